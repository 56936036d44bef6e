"""The demo: the whole product on a bundled sample repository, from a bundled recording.

No API key and no network: the model's answers come from `demo_recording.jsonl` through a
`ReplayModel`, while everything else is real (Docker sandbox, the agent loop, the test gate,
git hand-off and the push to the sample's bare remote).

    python -m orchestrator.demo [--workdir DIR]     run it (also `fresh-sandbox demo`)
    python -m orchestrator.demo --record            regenerate the bundled recording from a
                                                    scripted session over loopback
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from orchestrator.errors import FreshError, PreflightError
from orchestrator.model import Model
from orchestrator.prices import Price
from orchestrator.replay import RecordingModel, ReplayModel
from orchestrator.sample import SampleRepo, make_sample_repo
from orchestrator.supervisor import RunResult
from orchestrator.testing import Bash, Submit, Turn

BUNDLED_RECORDING = Path(__file__).with_name("demo_recording.jsonl")
DEMO_TASK = "Expose the low_stock report on the command line"
DEMO_MODEL = "gpt-4.1-mini"
DEMO_PRICE = Price(0.4, 1.6)  # USD per million tokens, stored in the recording
DEMO_SCRIPT: list[Turn] = [
    Bash("cat inventory/stock.py inventory/cli.py tests/test_stock.py"),
    Bash(
        "cat > inventory/cli.py <<'PY'\n"
        "import sys\n\nfrom inventory.stock import low_stock\n\n\n"
        "def main(argv: list[str] | None = None) -> int:\n"
        "    args = sys.argv[1:] if argv is None else argv\n"
        "    if args[:1] == ['low-stock']:\n"
        "        print('\\n'.join(low_stock()))\n"
        "        return 0\n"
        "    print('usage: inventory low-stock')\n"
        "    return 2\n"
        "PY\n"
        "cat > tests/test_cli.py <<'PY'\n"
        "from inventory.cli import main\n\n\n"
        "def test_low_stock_command(capsys):\n"
        "    assert main(['low-stock']) == 0\n"
        "    assert capsys.readouterr().out.split() == ['apple', 'plum']\n\n\n"
        "def test_unknown_command_shows_usage(capsys):\n"
        "    assert main(['nope']) == 2\n"
        "    assert 'usage' in capsys.readouterr().out\n"
        "PY\n"
        "python3 -m pytest -q"
    ),
    Bash("git diff --stat"),
    Submit("Added an `inventory low-stock` command that prints the items below the threshold, "
           "with tests for it and for the usage message."),
]

Log = Callable[[str], None]


def _say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


@dataclass(frozen=True)
class DemoResult:
    sample: SampleRepo
    run: RunResult


def ensure_agent_image(log: Log = _say) -> None:
    """Build the agent image if it is missing; fail with a hint when Docker does not answer."""
    from orchestrator.config import load_policy
    from sandbox.base import BackendUnavailable, ImageMissing
    from sandbox.docker import DockerBackend
    from sandbox.images import build_images

    image = load_policy("default").image
    try:
        DockerBackend().preflight(image)
    except BackendUnavailable as exc:
        raise PreflightError(f"the demo needs Docker: {exc.message}", hint="start the Docker daemon") from exc
    except ImageMissing:
        log(f"the agent image {image} is missing; building it once (a few minutes) ...")
        try:
            build_images(log=log)
        except FreshError:
            raise
        except Exception as exc:  # noqa: BLE001 - any build failure gets the same advice
            raise PreflightError(f"could not build {image}: {exc}",
                                 hint="run `fresh-sandbox images build` and retry") from exc


def play(workdir: Path, model: Model, price: Price, *, output: str = "auto") -> DemoResult:
    """Create the sample repository in `workdir` and run the demo task on it, as `start` would."""
    from orchestrator.config import RunConfig, TaskSpec, load_policy, override
    from orchestrator.launch import launch_run

    if (workdir / "app").exists() or (workdir / "remote.git").exists():
        raise PreflightError(f"{workdir} already holds a demo", hint="pass an empty --workdir, or none")
    sample = make_sample_repo(workdir)
    policy = override(load_policy("default"), model=model.name, approval=False, agents=1)
    config = RunConfig(repo=sample.path, state_dir=sample.path / ".fresh", policy=policy,
                       tasks=(TaskSpec(title=DEMO_TASK),))
    return DemoResult(sample, launch_run(config, price, model, output=output))


def run_demo(workdir: Path | None = None, *, output: str = "auto", recording: Path = BUNDLED_RECORDING) -> int:
    """Run the demo from the bundled recording; print where the report and branch are; the run's exit code."""
    model = ReplayModel(recording)
    price = Price(*model.recorded_price) if model.recorded_price else DEMO_PRICE
    ensure_agent_image()
    if workdir is None:
        workdir = Path(tempfile.mkdtemp(prefix="fresh-demo-"))
    workdir = workdir.expanduser().resolve()
    _say(f"demo: sample repository in {workdir / 'app'}; replaying {recording.name} (no API key needed)")
    result = play(workdir, model, price, output=output)
    _print_outcome(result, price)
    return result.run.exit_code


def _print_outcome(result: DemoResult, price: Price) -> None:
    run = result.run
    _say(f"\nrun {run.run_id}: spent ${run.spent_usd:.4f} (replayed usage at "
         f"${price.input_per_mtok}/${price.output_per_mtok} per million tokens)")
    _say(f"report:   {run.report_path.with_suffix('.md')}")
    for rec in run.records:
        if rec.pushed:
            _say(f"pushed:   {rec.branch} -> {result.sample.remote}")
            _say(f"look:     git -C {result.sample.remote} log -p main..{rec.branch}")
        else:
            _say(f"{rec.agent_id} {rec.state}: {rec.reason}")
    _say(f"clean up: rm -rf {result.sample.path.parent}")


def record(target: Path = BUNDLED_RECORDING, *, output: str = "auto") -> Path:
    """Regenerate the recording: the demo task, answered by DEMO_SCRIPT over loopback, recorded."""
    from orchestrator.config import load_policy
    from orchestrator.model import OpenAIModel
    from orchestrator.testing import ScriptedModelServer

    ensure_agent_image()
    with tempfile.TemporaryDirectory(prefix="fresh-demo-record-") as tmp, \
            ScriptedModelServer(DEMO_SCRIPT, expected_key="demo") as server:
        inner = OpenAIModel(DEMO_MODEL, api_key="demo", base_url=server.base_url,
                            max_output_tokens=load_policy("default").max_output_tokens)
        recording = Path(tmp) / "model.jsonl"
        meta = {"price": [DEMO_PRICE.input_per_mtok, DEMO_PRICE.output_per_mtok], "task": DEMO_TASK,
                "made_by": "python -m orchestrator.demo --record"}
        result = play(Path(tmp) / "work", RecordingModel(inner, recording, meta=meta), DEMO_PRICE, output=output)
        if not all(rec.pushed for rec in result.run.records):
            raise FreshError("the scripted demo session did not push its branch; the recording was not replaced",
                             hint=f"see {result.run.report_path.with_suffix('.md')} before it is removed")
        shutil.copyfile(recording, target)
    _say(f"recorded {target}")
    return target


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m orchestrator.demo", description=__doc__.split("\n\n")[0])
    parser.add_argument("--workdir", type=Path, default=None, help="where to create the sample (default: a temp dir)")
    parser.add_argument("--record", action="store_true", help="regenerate the bundled recording")
    parser.add_argument("--output", default="auto", choices=("auto", "pretty", "json", "quiet"))
    args = parser.parse_args(argv)
    from sandbox.base import SandboxError

    try:
        if args.record:
            record(output=args.output)
            return 0
        return run_demo(args.workdir, output=args.output)
    except FreshError as exc:
        _say(f"error: {exc.message}")
        if exc.hint:
            _say(f"  hint: {exc.hint}")
        return exc.exit_code
    except SandboxError as exc:
        _say(f"error: {exc.message}")
        if exc.hint:
            _say(f"  hint: {exc.hint}")
        return 2


if __name__ == "__main__":
    sys.exit(main())
