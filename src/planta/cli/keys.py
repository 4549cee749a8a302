"""`planta keys create|show|rotate`: the hub's Ed25519 key that signs bundles for devices.

The private key lives in the folder named by the ``signing_keys`` setting (default
``~/.config/planta/signing``), never in the project folder; devices hold only public keys.
Creating and rotating a key is recorded in the project's audit trail.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import typer

from planta.cli.output import JSON_OPTION, console, handle_errors, print_json, table

if TYPE_CHECKING:
    from planta.services.workspace import Workspace
    from planta.store.keys import KeyRing

keys_app = typer.Typer(help="The key that signs bundles for devices: create, show, rotate.",
                       no_args_is_help=True)

TRUST_HINT = ("Devices accept bundles signed by keys they trust: put the `ed25519:...` line in "
              "each device's trusted keys.")


def _open() -> tuple[Workspace, KeyRing]:
    from planta.services.workspace import Workspace
    from planta.store.keys import KeyRing

    ws = Workspace.open()
    return ws, KeyRing(ws.project.settings.resolved_signing_keys)


@keys_app.command("create")
@handle_errors
def create(as_json: bool = JSON_OPTION) -> None:
    """Create the signing key (once; use `planta keys rotate` to replace it)."""
    ws, ring = _open()
    try:
        info = ring.create()
        ws.audit.append("keys.create", f"signing-key/{info.key_id}", ws.actor,
                        {"key_id": info.key_id, "public_key": info.public})
    finally:
        ws.close()
    if as_json:
        print_json({"ok": True, "key": info.to_dict(), "folder": str(ring.folder)})
        return
    console.print(f"Created signing key {info.key_id} in {ring.folder} (private, mode 600).",
                  markup=False, soft_wrap=True)
    console.print(f"\n    {info.public}\n", markup=False, soft_wrap=True)
    console.print(TRUST_HINT, markup=False, soft_wrap=True)


@keys_app.command("show")
@handle_errors
def show(as_json: bool = JSON_OPTION) -> None:
    """List the signing keys (current and retired) with their public keys."""
    ws, ring = _open()
    try:
        keys = ring.keys()
    finally:
        ws.close()
    if as_json:
        print_json({"ok": True, "folder": str(ring.folder), "keys": [k.to_dict() for k in keys]})
        return
    if not keys:
        console.print(f"No signing key yet in {ring.folder}. Create one with `planta keys "
                      "create`.", markup=False, soft_wrap=True)
        return
    console.print(table(f"Signing keys in {ring.folder}", ["key id", "status", "created",
                                                           "retired"],
                        [(k.key_id, "current" if k.is_current else "retired", k.created_at,
                          k.retired_at) for k in keys]))
    # Whole lines, never cut by the table's width: these are what devices copy.
    for k in keys:
        console.print(f"{k.public}  # {k.key_id} ({'current' if k.is_current else 'retired'})",
                      markup=False, soft_wrap=True)
    console.print(TRUST_HINT, markup=False, soft_wrap=True)


@keys_app.command("rotate")
@handle_errors
def rotate(as_json: bool = JSON_OPTION) -> None:
    """Make a new signing key; the old private key is deleted, its public key kept as retired."""
    ws, ring = _open()
    try:
        new, old = ring.rotate()
        ws.audit.append("keys.rotate", f"signing-key/{new.key_id}", ws.actor,
                        {"key_id": new.key_id, "public_key": new.public,
                         "retired": old.key_id if old else None})
    finally:
        ws.close()
    if as_json:
        print_json({"ok": True, "key": new.to_dict(), "retired": old.to_dict() if old else None,
                    "folder": str(ring.folder)})
        return
    console.print(f"New signing key {new.key_id}" + (f"; {old.key_id} is retired (its private "
                                                      "key deleted)." if old else "."),
                  markup=False, soft_wrap=True)
    console.print(f"\n    {new.public}\n", markup=False, soft_wrap=True)
    console.print("Next: add this key to every device's trusted keys (keep the old one there "
                  "for now), export the models again (`planta export <usecase> --onnx`), and "
                  "remove the old key from devices once they run the new bundles.",
                  markup=False, soft_wrap=True)


__all__ = ["keys_app"]
