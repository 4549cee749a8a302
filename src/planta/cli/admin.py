"""`planta backup` and `planta restore`."""

from __future__ import annotations

from pathlib import Path

import typer

from planta.cli.output import JSON_OPTION, console, handle_errors, print_json


@handle_errors
def backup(file: Path = typer.Argument(..., help="Backup file to write (.tar.gz)."),
           as_json: bool = JSON_OPTION) -> None:
    """Take a consistent copy of the store and artifacts while planta keeps running."""
    from planta.services.workspace import Workspace
    from planta.store.backup import backup as run_backup

    ws = Workspace.open()
    try:
        ws.audit.append("backup", f"project/{ws.project.name}", ws.actor, {"file": file.name})
        info = run_backup(ws.store, ws.artifacts, file, project_dir=ws.project.root)
    finally:
        ws.close()
    if as_json:
        print_json({"ok": True, "file": str(file)} | (info.to_dict() if hasattr(info, "to_dict")
                                                       else {}))
    else:
        console.print(f"Backup written to {file}. Restore it with `planta restore {file}`.")


@handle_errors
def restore(file: Path = typer.Argument(..., help="Backup file made by `planta backup`."),
            force: bool = typer.Option(False, help="Replace an existing store."),
            as_json: bool = JSON_OPTION) -> None:
    """Bring a backup back into this project folder (refuses to overwrite unless --force)."""
    from planta.errors import NotFoundError
    from planta.project import Project
    from planta.store.backup import restore as run_restore

    try:
        project = Project.open(Path.cwd())
    except NotFoundError:
        # An empty folder: the backup brings planta.toml along and the default layout.
        root = Path.cwd()
        info = run_restore(file, root, force=force)
    else:
        root = project.root
        info = run_restore(file, root, force=force,
                           store_url=project.settings.resolved_store_url,
                           artifacts_url=project.settings.resolved_artifacts_url)
    if as_json:
        print_json({"ok": True, "file": str(file)} | (info.to_dict() if hasattr(info, "to_dict")
                                                       else {}))
    else:
        console.print(f"Restored {file} into {root}. Check it with `planta audit verify`.")
