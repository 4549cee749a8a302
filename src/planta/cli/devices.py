"""`planta devices list|enrol|revoke|pin|unpin` and `planta simulate`.

Enrolling a device makes its token (shown once); the device puts it in its config file with
the hub's URL. Pinning holds a device group on one model version while the rest of the use
case's devices follow production. `planta simulate` publishes AI4I-like machine readings to an
MQTT broker, so a whole plant (hub, broker, devices) runs on one laptop.
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any

import typer

from planta.cli.output import JSON_OPTION, console, handle_errors, print_json, table

if TYPE_CHECKING:
    from planta.services.workspace import Workspace
    from planta.store.devices import DeviceStore

devices_app = typer.Typer(help="Edge devices: enrol, list, revoke, pin a group to a version.",
                          no_args_is_help=True)

ONCE = ("Copy this token into the device's config file ([hub] token = ...) now: it will not be "
        "shown again (planta keeps only a hash).")


def _open() -> tuple[Workspace, DeviceStore]:
    from planta.services.workspace import Workspace
    from planta.store.devices import DeviceStore
    from planta.store.tokens import TokenStore

    ws = Workspace.open()
    return ws, DeviceStore(ws.store, ws.audit, TokenStore(ws.store, ws.audit))


def _ago(at: datetime | None) -> str:
    if at is None:
        return "never"
    s = (datetime.now(at.tzinfo) - at).total_seconds()
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if s >= size:
            return f"{s / size:.0f} {unit} ago"
    return f"{s:.0f} s ago"


@devices_app.command("list")
@handle_errors
def list_devices(usecase: str = typer.Option(None, "--usecase", help="Only this use case."),
                 drift: bool = typer.Option(False, "--drift", help="Also compare each "
                                            "device's last 24 h of inputs with its model's "
                                            "reference (slower)."),
                 as_json: bool = JSON_OPTION) -> None:
    """Every device: last seen, model version, outbox depth, predictions received."""
    from planta.services.devices import DeviceService

    ws, store = _open()
    drifts: dict[str, dict[str, Any]] = {}
    try:
        devices = store.list(usecase)
        pins = store.pins()
        if drift:
            svc = DeviceService(ws, store)
            drifts = {d.name: svc.drift(d) for d in devices if d.is_active}
    finally:
        ws.close()
    if as_json:
        print_json({"devices": [d.to_dict() | ({"drift": drifts.get(d.name)} if drift else {})
                                for d in devices], "pins": pins})
        return
    if not devices:
        console.print("No device is enrolled yet: `planta devices enrol NAME --usecase U`.",
                      markup=False)
        return
    console.print(table("Devices", ["device", "use case", "group", "state", "last seen",
                                    "model", "outbox", "dropped", "received"],
                        [(d.name, d.usecase, d.group or "", "active" if d.is_active else
                          "revoked", _ago(d.last_seen_at),
                          "" if d.model_version is None else f"v{d.model_version}",
                          d.outbox_depth, d.outbox_dropped, f"{d.received:,}")
                         for d in devices]))
    for name, found in drifts.items():
        if found.get("rows"):
            words = ", ".join(found["drifted"]) or "no drift"
            console.print(f"{name}: {found['rows']:,} readings in 24 h; drifting: {words}.",
                          markup=False)
        else:
            console.print(f"{name}: {found.get('reason')}.", markup=False)
    for pin in pins:
        console.print(f"Group {pin['group']} of {pin['usecase']} is pinned to version "
                      f"{pin['version']} (by {pin['set_by']}).", markup=False)


@devices_app.command("enrol")
@handle_errors
def enrol(name: str = typer.Argument(..., help="The device's name, e.g. press-07."),
          usecase: str = typer.Option(..., "--usecase", help="The use case it predicts."),
          group: str = typer.Option(None, "--group", help="A device group (for pinning)."),
          as_json: bool = JSON_OPTION) -> None:
    """Enrol a device and print its token once."""
    from planta.errors import NotFoundError

    ws, store = _open()
    try:
        if usecase not in ws.project.usecase_names:
            raise NotFoundError(f"There is no use case {usecase!r} in this project.",
                                hint="See them with `planta usecase list`.")
        device, secret = store.enrol(name, usecase, group=group, actor=ws.actor)
    finally:
        ws.close()
    if as_json:
        print_json({"ok": True, "device": device.to_dict(), "token": secret, "warning": ONCE})
        return
    console.print(f"Enrolled device {name!r} for {usecase}"
                  f"{f' (group {group})' if group else ''}. Its token:", markup=False)
    console.print(f"\n    {secret}\n", markup=False, soft_wrap=True)
    console.print(f"[yellow]{ONCE}[/]", soft_wrap=True)


@devices_app.command("revoke")
@handle_errors
def revoke(name: str = typer.Argument(..., help="The device's name."),
           as_json: bool = JSON_OPTION) -> None:
    """Revoke a device: the hub refuses its token from then on."""
    ws, store = _open()
    try:
        changed = store.revoke(name, actor=ws.actor)
    finally:
        ws.close()
    if as_json:
        print_json({"ok": True, "device": name, "revoked": changed})
    else:
        console.print(f"Revoked device {name!r}." if changed else
                      f"Device {name!r} was already revoked; nothing changed.", markup=False)


@devices_app.command("pin")
@handle_errors
def pin(usecase: str = typer.Option(..., "--usecase", help="The use case."),
        group: str = typer.Option(..., "--group", help="The device group."),
        version: int = typer.Option(..., "--version", help="The model version to hold."),
        as_json: bool = JSON_OPTION) -> None:
    """Hold a device group on one model version (the others follow production)."""
    ws, store = _open()
    try:
        ws.registry.get_model(usecase, version)       # NotFoundError for an unknown version
        store.pin(usecase, group, version, actor=ws.actor)
    finally:
        ws.close()
    if as_json:
        print_json({"ok": True, "usecase": usecase, "group": group, "version": version})
    else:
        console.print(f"Devices of group {group!r} ({usecase}) now run version {version}; "
                      f"`planta devices unpin` lets them follow production again.",
                      markup=False)


@devices_app.command("unpin")
@handle_errors
def unpin(usecase: str = typer.Option(..., "--usecase", help="The use case."),
          group: str = typer.Option(..., "--group", help="The device group."),
          as_json: bool = JSON_OPTION) -> None:
    """Let a device group follow the production version again."""
    ws, store = _open()
    try:
        changed = store.unpin(usecase, group, actor=ws.actor)
    finally:
        ws.close()
    if as_json:
        print_json({"ok": True, "usecase": usecase, "group": group, "unpinned": changed})
    else:
        console.print(f"Group {group!r} follows production again." if changed else
                      f"Group {group!r} was not pinned; nothing changed.", markup=False)


@handle_errors
def simulate(host: str = typer.Option("127.0.0.1", help="The MQTT broker's address."),
             port: int = typer.Option(1883, help="The broker's port."),
             rate: float = typer.Option(10.0, "--rate", help="Readings per second (all "
                                        "machines together; 0: as fast as possible)."),
             machines: int = typer.Option(5, "--machines", help="How many machines."),
             count: int = typer.Option(None, "--count", help="Stop after this many readings."),
             duration: float = typer.Option(None, "--duration", help="Stop after this many "
                                            "seconds (default: run until Ctrl-C)."),
             drift: float = typer.Option(0.0, "--drift", help="Torque and process temperature "
                                         "creep up by this many standard deviations per 1,000 "
                                         "readings."),
             faults: float = typer.Option(0.0, "--faults", help="Share of broken readings "
                                          "(missing field, negative torque, text, not JSON)."),
             topic: str = typer.Option("plant/{machine}/readings", "--topic",
                                       help="Topic pattern; {machine} is machine-1, -2, ..."),
             username: str = typer.Option(None, "--username", help="Broker user."),
             password: str = typer.Option(None, "--password", envvar="PLANTA_MQTT_PASSWORD",
                                          help="Broker password (or PLANTA_MQTT_PASSWORD)."),
             tls_ca: str = typer.Option(None, "--tls-ca", help="CA file: connect with TLS."),
             seed: int = typer.Option(None, "--seed", help="Repeatable readings."),
             as_json: bool = JSON_OPTION) -> None:
    """Publish AI4I-like machine readings to an MQTT broker (a demo plant on one laptop)."""
    import signal
    import threading

    from planta.errors import ConfigError
    from planta.services.simulate import Simulator
    from planta_edge.config import MqttConfig
    from planta_edge.mqtt import make_client

    sim = Simulator(machines=machines, drift=drift, faults=faults, topic=topic, seed=seed)
    cfg = MqttConfig(host=host, port=port, username=username, password=password, tls_ca=tls_ca)
    client = make_client(cfg, f"planta-simulate-{threading.get_native_id()}", clean=True)
    try:
        client.connect(host, port)
    except OSError as exc:
        raise ConfigError(f"Cannot reach the MQTT broker at {host}:{port}: {exc}.",
                          hint="Start Mosquitto (`mosquitto -p 1883`) or pass --host/--port."
                          ) from exc
    client.loop_start()
    stop = threading.Event()
    if not as_json:
        console.print(f"Publishing to {host}:{port} ({topic}), {rate:g}/s from {machines} "
                      "machines; Ctrl-C stops.", markup=False)
    # Ctrl-C ends the run between two readings; what was published is still reported.
    previous = signal.signal(signal.SIGINT, lambda *_: stop.set())
    try:
        report = sim.run(client, rate=rate, count=count, duration_s=duration,
                         stop=stop.is_set)
    finally:
        signal.signal(signal.SIGINT, previous)
        client.disconnect()   # first: the network loop then ends at once, not at its timeout
        client.loop_stop()
    out: dict[str, Any] = {"ok": True} | report.to_dict()
    if as_json:
        print_json(out)
    else:
        faults_text = ", ".join(f"{k} {v}" for k, v in report.faults.items()) or "none"
        console.print(f"Published {report.sent:,} readings in {report.duration_s:.1f} s "
                      f"({report.rate_per_s:.0f}/s); broken on purpose: {faults_text}.",
                      markup=False)


__all__ = ["devices_app", "simulate"]
