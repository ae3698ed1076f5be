"""A run of a job of workspace.yaml's code location, executed in this process (`custpipe run`).

The run record is the one the UI's Launchpad would create: the job's remote origin names the
code location of workspace.yaml (`custpipe`), so the run is listed under the job and on the
Overview timeline, and its re-execution finds the same job. The code is loaded in this process
(no code server) and the run's steps execute here with the job's own executor (in process).
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import dagster as dg

from custpipe.settings import REPO_DIR

WORKSPACE_FILE = REPO_DIR / "workspace.yaml"


class WorkspaceError(Exception):
    """workspace.yaml does not define the code location or job asked for."""


@dataclass(frozen=True)
class WorkspaceJob:
    """A job of a workspace's code location, loaded in this process."""

    location: object  # dagster's InProcessCodeLocation
    repository: object  # its RemoteRepository
    remote_job: object  # the RemoteJob
    origin: object  # the RemoteJobOrigin a run launched from the UI carries


@contextmanager
def workspace_job(
    instance: dg.DagsterInstance, job_name: str, workspace_file: Path = WORKSPACE_FILE
) -> Iterator[WorkspaceJob]:
    """Load workspace.yaml's (only) code location in this process and find `job_name` in it."""
    from dagster._core.remote_origin import (
        InProcessCodeLocationOrigin,
        RemoteJobOrigin,
        RemoteRepositoryOrigin,
    )
    from dagster._core.workspace.load import location_origins_from_yaml_paths

    if not workspace_file.is_file():
        raise WorkspaceError(
            f"no workspace file {workspace_file}: `custpipe run` with DAGSTER_HOME runs the job "
            "of its code location (run it from a checkout of the repository, or unset "
            "DAGSTER_HOME for a run outside the Dagster instance)"
        )
    origins = location_origins_from_yaml_paths([str(workspace_file)])
    if len(origins) != 1 or not hasattr(origins[0], "loadable_target_origin"):
        raise WorkspaceError(
            f"{workspace_file} must load exactly one Python code location (it loads "
            f"{len(origins)}): `custpipe run` executes that location's job"
        )
    origin = origins[0]
    module = origin.loadable_target_origin.module_name
    if module in sys.modules:  # its definitions read the environment when it is imported:
        importlib.reload(sys.modules[module])  # load them for this environment, as a code server
    in_process = InProcessCodeLocationOrigin(
        loadable_target_origin=origin.loadable_target_origin, location_name=origin.location_name
    )
    with in_process.create_location(instance) as location:
        repositories = location.get_repositories()
        repository = next(iter(repositories.values()))
        if not repository.has_job(job_name):
            raise WorkspaceError(
                f"code location '{origin.location_name}' of {workspace_file} has no job "
                f"'{job_name}'"
            )
        remote_job = repository.get_full_job(job_name)
        # the origin the webserver and the daemon give the job: their code location is the
        # workspace's (a code server), not this in-process copy of it
        job_origin = RemoteJobOrigin(
            repository_origin=RemoteRepositoryOrigin(
                code_location_origin=origin, repository_name=repository.name
            ),
            job_name=job_name,
        )
        yield WorkspaceJob(location, repository, remote_job, job_origin)


def create_run(
    instance: dg.DagsterInstance,
    job: WorkspaceJob,
    run_config: Mapping,
    tags: Mapping[str, str],
) -> dg.DagsterRun:
    """Create the run record as `dagster job launch` does, with the job's remote origin."""
    from dagster._core.definitions.selector import JobSubsetSelector

    remote_job = job.location.get_job(
        JobSubsetSelector(
            location_name=job.origin.location_name,
            repository_name=job.repository.name,
            job_name=job.remote_job.name,
            op_selection=None,
        )
    )
    plan = job.location.get_execution_plan(
        remote_job, dict(run_config), step_keys_to_execute=None, known_state=None, instance=instance
    ).execution_plan_snapshot
    return instance.create_run(
        job_name=remote_job.name,
        run_id=None,
        run_config=dict(run_config),
        resolved_op_selection=None,
        step_keys_to_execute=plan.step_keys_to_execute,
        op_selection=None,
        status=None,
        root_run_id=None,
        parent_run_id=None,
        tags={**remote_job.tags, **tags},
        job_snapshot=remote_job.job_snapshot,
        execution_plan_snapshot=plan,
        parent_job_snapshot=remote_job.parent_job_snapshot,
        remote_job_origin=job.origin,
        job_code_origin=remote_job.get_python_origin(),
        asset_selection=None,
        asset_check_selection=None,
        asset_graph=job.repository.asset_graph,
    )


def execute_run(instance: dg.DagsterInstance, job: WorkspaceJob, run: dg.DagsterRun):
    """Execute a created run in this process; its result (events, success) as execute_in_process
    gives it."""
    from dagster._core.execution.api import execute_run as dagster_execute_run

    recon = job.location.get_reconstructable_job(job.repository.name, run.job_name)
    return dagster_execute_run(recon, run, instance, raise_on_error=False)
