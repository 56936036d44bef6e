"""Every implementation assigned to the protocol it serves, so drift fails mypy.

Nothing here runs: the assignments are only type-checked.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from orchestrator.control import StoreDecisions
    from orchestrator.lifecycle import Decisions
    from orchestrator.model import Model, OpenAIModel
    from orchestrator.replay import RecordingModel, ReplayModel
    from sandbox.base import Backend, Sandbox
    from sandbox.docker import DockerBackend, DockerSandbox

    def _conforms(
        openai_model: OpenAIModel, recording: RecordingModel, replay: ReplayModel,
        docker_backend: DockerBackend, docker_sandbox: DockerSandbox, decisions: StoreDecisions,
    ) -> tuple[list[Model], Backend, Sandbox, Decisions]:
        return [openai_model, recording, replay], docker_backend, docker_sandbox, decisions
