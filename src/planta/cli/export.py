"""`planta export <usecase> --onnx [--version N] [--quantize]`: a signed edge bundle."""

from __future__ import annotations

import typer

from planta.cli.output import (
    EXIT_USAGE,
    JSON_OPTION,
    console,
    err_console,
    handle_errors,
    print_json,
)


@handle_errors
def export(usecase: str = typer.Argument(..., help="Use case name."),
           version: str = typer.Option("production", "--version", help="Version number or "
                                       "alias (production, candidate, ...)."),
           onnx: bool = typer.Option(False, "--onnx", help="Export as ONNX for planta-edge "
                                     "(the only format so far)."),
           quantize: bool = typer.Option(False, "--quantize", help="Store weight matrices as "
                                         "8-bit integers where the model has them (linear "
                                         "models; tree ensembles have none)."),
           as_json: bool = JSON_OPTION) -> None:
    """Export a model version as a signed edge bundle, checked against the original."""
    if not onnx:
        err_console.print("Say which format to export: `--onnx` (for planta-edge devices).",
                          soft_wrap=True)
        raise typer.Exit(EXIT_USAGE)
    from planta.services.export import export_edge
    from planta.services.workspace import Workspace
    from planta.store.keys import KeyRing

    ws = Workspace.open()
    try:
        signer = KeyRing(ws.project.settings.resolved_signing_keys).require_signer()
        result = export_edge(ws, usecase, version, signer=signer, quantize=quantize)
    finally:
        ws.close()
    if as_json:
        print_json({"ok": True} | result.to_dict())
        return
    p, lat = result.parity, result.latency
    lines = [
        f"Exported {usecase} version {result.version} as an edge bundle "
        f"{result.edge_digest[:12]}… ({_kib(result.edge_size)}; ONNX graph "
        f"{_kib(result.graph_size)}; registered bundle {_kib(result.source_size)}), signed "
        f"with key {result.signed_by}.",
        f"Parity on {p['rows']}: largest difference {p['max_abs_diff']:.3g} "
        f"({p['compared']}); {p['decisions_differ']} of {p['n']} decisions differ.",
        f"One record: {lat['onnx_median_us']:.0f} µs with onnxruntime, "
        f"{lat['native_median_us']:.0f} µs with the native model (medians).",
        "In the ONNX graph: " + "; ".join(result.in_graph) + ".",
    ]
    if result.on_device:
        lines.append("On the device, before the graph: " + "; ".join(result.on_device) + ".")
    if result.quantize_note:
        lines.append(result.quantize_note)
    lines.append(f"Lineage: derived from the registered bundle {result.source_digest[:12]}…, "
                 "which is unchanged.")
    for line in lines:
        console.print(f"• {line}", markup=False, soft_wrap=True)


def _kib(n: int) -> str:
    return f"{n / 1024:.1f} KiB"


__all__ = ["export"]
