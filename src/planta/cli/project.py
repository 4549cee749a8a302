"""`planta init`, `planta usecase …` and `planta contract …`."""

from __future__ import annotations

import os
import shlex
import subprocess  # nosec B404 - only to open the user's own $EDITOR, below
import sys
from pathlib import Path

import typer

from planta.cli.output import JSON_OPTION, console, handle_errors, print_json, table, tr

usecase_app = typer.Typer(help="Define what to predict and what good enough means.",
                          no_args_is_help=True)
contract_app = typer.Typer(help="Show or edit a use case's data contract.", no_args_is_help=True)


@handle_errors
def init(path: Path = typer.Argument(..., help="Folder for the new project."),
         name: str = typer.Option(None, help="Project name (default: the folder's name)."),
         as_json: bool = JSON_OPTION) -> None:
    """Create a project folder: planta.toml plus .planta/ (SQLite store and artifacts)."""
    from planta.project import Project
    from planta.services.workspace import Workspace

    project = Project.init(path, name=name)
    ws = Workspace.from_project(project)
    ws.audit.append("project_init", f"project/{project.name}", ws.actor, {"name": project.name})
    ws.close()
    if as_json:
        print_json({"ok": True, "project": project.name, "path": str(project.root)})
        return
    console.print(tr("cli.init.done", name=f"[bold]{project.name}[/]", root=project.root))
    console.print(tr("cli.init.next", path=path) + "\n"
                  '  planta usecase add failure --target "Machine failure" --task binary '
                  '--objective "recall>=0.80 and precision>=0.50"')


@usecase_app.command("add")
@handle_errors
def usecase_add(
    name: str = typer.Argument(..., help="Short name, e.g. failure or scrap."),
    target: str = typer.Option(..., help="The column to predict (header as in your file)."),
    task: str = typer.Option("binary", help="binary, multiclass or regression."),
    objective: str = typer.Option("", help='What good enough means, e.g. '
                                  '"recall>=0.80 and precision>=0.50" or '
                                  '"cost missed=5000 false_alarm=200" or "rmse<=12".'),
    entity: str = typer.Option(None, help="Machine or part id column (groups validation)."),
    time_column: str = typer.Option(None, "--time", help="Time column (validation in time "
                                    "order)."),
    include: list[str] = typer.Option(None, help="Only use these columns as features."),
    exclude: list[str] = typer.Option(None, help="Never use these columns as features."),
    keep: list[str] = typer.Option(None, help="Keep a column the leakage guard would exclude."),
    gate_on: str = typer.Option("lower_bound", help="lower_bound (default) or point."),
    rows_per_day: float = typer.Option(None, help="Rows per day, for false_alarms_per_day."),
    max_latency_ms: float = typer.Option(None, help="Constraint: slowest acceptable predict."),
    max_bundle_mb: float = typer.Option(None, help="Constraint: largest acceptable bundle."),
    ensemble: bool = typer.Option(False, help="Allow an average of several models when "
                                  "cross-validation says it helps (slower to predict)."),
    replace: bool = typer.Option(False, help="Replace an existing use case of that name."),
    as_json: bool = JSON_OPTION,
) -> None:
    """Add a use case: what to predict and the business objective."""
    from planta.core.spec import UseCase
    from planta.services.workspace import Workspace

    data: dict[str, object] = {"task": task, "target": target, "objective": objective,
                               "gate_on": gate_on}
    for key, value in (("entity", entity), ("time", time_column), ("rows_per_day", rows_per_day),
                       ("max_latency_ms", max_latency_ms), ("max_bundle_mb", max_bundle_mb)):
        if value is not None:
            data[key] = value
    for key, values in (("include", include), ("exclude", exclude), ("keep", keep)):
        if values:
            data[key] = list(values)
    if ensemble:
        data["ensemble"] = True
    ws = Workspace.open()
    usecase = UseCase.from_dict(name, data)
    ws.project.add_usecase(usecase, replace=replace)
    ws.audit.append("usecase_add", f"usecase/{name}", ws.actor, usecase.to_dict())
    ws.close()
    if as_json:
        print_json({"ok": True, "usecase": name} | usecase.to_dict())
        return
    from planta.i18n import env_lang, translator
    from planta.words import objective_words

    console.print(tr("cli.usecase.added", name=f"[bold]{name}[/]", target=target,
                     task=tr(f"task.{usecase.task.value}")))
    console.print(tr("cli.usecase.objective", objective=objective_words(
        usecase.objective, translator(env_lang()))))
    console.print(tr("cli.usecase.next", name=name))


@usecase_app.command("list")
@handle_errors
def usecase_list(as_json: bool = JSON_OPTION) -> None:
    """List the use cases of this project."""
    from planta.project import Project

    project = Project.open()
    items = [project.usecase(n) for n in project.usecase_names]
    if as_json:
        print_json([{"name": u.name} | u.to_dict() for u in items])
        return
    console.print(table("Use cases", ["name", "task", "target", "objective"],
                        [(u.name, u.task.value, u.target, u.objective.text) for u in items]))


@usecase_app.command("show")
@handle_errors
def usecase_show(name: str, as_json: bool = JSON_OPTION) -> None:
    """Show one use case and its objective in plain words."""
    from planta.project import Project

    usecase = Project.open().usecase(name)
    if as_json:
        print_json({"name": name} | usecase.to_dict())
        return
    for key, value in usecase.to_dict().items():
        console.print(f"{key:>15}: {value}")
    console.print(f"{'in plain words':>15}: {usecase.objective.describe()}")


@contract_app.command("show")
@handle_errors
def contract_show(usecase: str, as_json: bool = JSON_OPTION) -> None:
    """Show the data contract: fields, kinds, units, ranges, categories."""
    from planta.services.ingest import load_contract
    from planta.services.workspace import Workspace

    ws = Workspace.open()
    ws.project.usecase(usecase)
    contract = load_contract(ws, usecase)
    path = ws.project.contract_path(usecase)
    ws.close()
    if contract is None:
        from planta.errors import NotFoundError

        raise NotFoundError(f"Use case {usecase!r} has no contract yet.",
                            hint=f"It is written by the first `planta ingest {usecase} <file>`.")
    if as_json:
        print_json(contract.to_dict() | {"path": str(path)})
        return
    rows = []
    for f in contract.fields:
        low, high = f.lower_bound, f.upper_bound
        accepted = ("" if low is None and high is None
                    else f"{'' if low is None else f'{low:.4g}'} … "
                         f"{'' if high is None else f'{high:.4g}'}")
        rows.append((f.name, f.label or "", f.kind, f.role, f.unit or "", accepted,
                     ", ".join(f.categories or ())[:40], "yes" if f.nullable else ""))
    console.print(table(f"Contract of {usecase} ({path})",
                        ["name", "header", "kind", "role", "unit", "accepted range",
                         "categories", "may be empty"], rows))


@contract_app.command("edit")
@handle_errors
def contract_edit(usecase: str, as_json: bool = JSON_OPTION) -> None:
    """Open the contract file in $EDITOR, check it, and record the change in the audit trail."""
    from planta.core.contract import contract_from_text
    from planta.errors import NotFoundError
    from planta.services.ingest import save_contract
    from planta.services.workspace import Workspace

    ws = Workspace.open()
    ws.project.usecase(usecase)
    path = ws.project.contract_path(usecase)
    if not path.is_file():
        raise NotFoundError(f"Use case {usecase!r} has no contract yet.",
                            hint=f"It is written by the first `planta ingest {usecase} <file>`.")
    before = path.read_text(encoding="utf-8")
    editor = os.environ.get("VISUAL") or os.environ.get("EDITOR")
    if editor and sys.stdin.isatty():
        # The user's own $VISUAL/$EDITOR on their own terminal, as an argument list (no shell):
        # nothing from a file or the network reaches this command line.
        subprocess.run([*shlex.split(editor), str(path)], check=False)  # nosec B603
    after = path.read_text(encoding="utf-8")
    try:
        contract = contract_from_text(after, source=str(path))
    except Exception:
        path.write_text(before, encoding="utf-8")
        raise
    changed = after != before
    if changed:
        save_contract(ws, usecase, contract, action="contract_edit")
    ws.close()
    if as_json:
        print_json({"ok": True, "path": str(path), "changed": changed})
    elif changed:
        console.print(f"Contract of {usecase} checked and saved; the change is in the audit trail.")
    else:
        console.print(f"The contract is {path}. Edit it (set $EDITOR to open it from here), then "
                      f"run `planta contract edit {usecase}` again to check and record the change.")
