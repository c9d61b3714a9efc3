"""README.md as a new user meets it.

- Every ```python block runs as written, in a fresh interpreter whose working directory is a temporary
  folder (slow: the block trains an MPS on the shipped digits).
- Every console command of the ```bash and plain ``` blocks runs, with the same flags, at tiny sizes:
  :data:`TINY` replaces the size values, :data:`ADDED` options shrink the data (``--limit``), comparison
  commands run with the ``smoke`` preset of :data:`comparison.report.PRESETS`; each runs as
  ``python -m <package>`` (``torchrun`` lines as ``python -m torch.distributed.run`` on 2 local CPU
  processes) in one shared temporary folder, the training commands first so that the others find their
  models, two commands at a time. A README command with a flag its CLI does not accept exits with
  status 2 and fails here. Set-up lines (venv, pip, make, pytest) are skipped; a console-block line that
  is neither a set-up step nor a command fails :func:`test_console_blocks_hold_only_known_commands`.
  Lines with ``--device cuda`` skip without CUDA; ``--data fashion-mnist`` lines skip without Debian's
  files.
"""
from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch

from bornmachine import datasets

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()
PROGRAMS = ("bornmachine", "rbm", "comparison")
TIMEOUT_S = 300

#: (program, option) → tiny values replacing the README's (all of them, for options taking a list).
TINY = {("bornmachine", "--max-bond"): ["2"], ("bornmachine", "--sweeps"): ["1"], ("bornmachine", "-n"): ["4"],
        ("bornmachine", "--n-samples"): ["4"], ("bornmachine", "--limit"): ["40"],
        ("rbm", "--hidden"): ["4"], ("rbm", "--params"): ["3200"], ("rbm", "--epochs"): ["1"],
        ("rbm", "--limit"): ["40"], ("rbm", "--ais-chains"): ["8"], ("rbm", "--ais-betas"): ["50"],
        ("comparison", "--hidden"): ["2", "3"], ("comparison", "--bond-dims"): ["2"]}
#: (program, subcommand) → options added unless the command has them already (then TINY sets their value).
ADDED = {("bornmachine", "train"): {"--limit": ["40"], "--n-samples": ["4"]},
         ("bornmachine", "evaluate"): {"--limit": ["40"]},
         ("rbm", "train"): {"--limit": ["40"]}, ("rbm", "evaluate"): {"--limit": ["40"]}}
#: The comparison's size presets (option → number of values): whichever a command names, it runs with
#: ``--preset smoke``.
PRESET_OPTIONS = {"--quick": 0, "--full": 0, "--preset": 1}
#: Set-up steps of the console blocks (first tokens), not run here.
SETUP = (("python3", "-m", "venv"), ("python", "-m", "venv"), (".",), ("source",), ("pip",), ("make",),
         ("python", "-m", "pytest"), ("python3", "-m", "pytest"))


@dataclass
class Command:
    text: str  # as in the README
    argv: list[str]  # program's arguments after the program name
    program: str
    nproc: int | None = None  # torchrun --nproc_per_node

    @property
    def subcommand(self) -> str:
        return self.argv[0] if self.argv else ""


def code_blocks(text: str) -> list[tuple[str, str]]:
    """(language, body) of every fenced block."""
    return [(m[1], m[2]) for m in re.finditer(r"^```(\w*)[^\n]*\n(.*?)^```", text, flags=re.M | re.S)]


def parse_segment(segment: str) -> Command | str | None:
    """A Command, "setup" for a set-up step, "comment", or None for text that is not a command."""
    try:
        tokens = shlex.split(segment, comments=True)
    except ValueError:
        return None
    if not tokens:
        return "comment"
    if any(tuple(tokens[:len(prefix)]) == prefix for prefix in SETUP):
        return "setup"
    if tokens[0] in PROGRAMS:
        return Command(segment.strip(), tokens[1:], tokens[0])
    if tokens[:2] in (["python", "-m"], ["python3", "-m"]) and len(tokens) > 2 and tokens[2] in PROGRAMS:
        return Command(segment.strip(), tokens[3:], tokens[2])
    if tokens[0] == "torchrun" and "-m" in tokens:
        at = tokens.index("-m")
        nproc = 1
        for k, tok in enumerate(tokens[1:at], start=1):
            if tok.startswith(("--nproc_per_node", "--nproc-per-node")):
                nproc = int(tok.partition("=")[2] or tokens[k + 1])
        if at + 1 < len(tokens) and tokens[at + 1] in PROGRAMS:
            return Command(segment.strip(), tokens[at + 2:], tokens[at + 1], nproc)
    return None


def console_lines(text: str):
    """(line, parsed segments) of every line of the console blocks: ```bash blocks and plain ``` blocks
    that hold at least one command or set-up line (others, e.g. a formula, are not console blocks)."""
    for lang, body in code_blocks(text):
        if lang not in ("", "bash", "sh", "console"):
            continue
        lines = [(line, [parse_segment(s) for s in line.split("&&")]) for line in body.splitlines() if line.strip()]
        if lang or any(p not in (None, "comment") for _, parsed in lines for p in parsed):
            yield from lines


COMMANDS = [p for _, parsed in console_lines(README) for p in parsed if isinstance(p, Command)]
PYTHON_BLOCKS = [body for lang, body in code_blocks(README) if lang == "python"]


def tiny(cmd: Command) -> list[str]:
    """The command's arguments at tiny sizes: the same options, size values from TINY, plus ADDED."""
    out, argv, k = [], cmd.argv, 0
    while k < len(argv):
        option, eq, _ = argv[k].partition("=")
        k += 1
        if cmd.program == "comparison" and option in PRESET_OPTIONS:
            k += 0 if eq else PRESET_OPTIONS[option]
        elif (cmd.program, option) in TINY:
            while not eq and k < len(argv) and not argv[k].startswith("-"):
                k += 1
            out += [option, *TINY[cmd.program, option]]
        else:
            out.append(argv[k - 1])
    for option, values in ADDED.get((cmd.program, cmd.subcommand), {}).items():
        if option not in out:
            out += [option, *values]
    if cmd.program == "comparison":
        out += ["--preset", "smoke"]
    return out


def option_value(argv: list[str], option: str) -> str | None:
    for k, token in enumerate(argv):
        if token == option and k + 1 < len(argv):
            return argv[k + 1]
        if token.startswith(option + "="):
            return token.partition("=")[2]
    return None


def skip_reason(cmd: Command) -> str | None:
    if (option_value(cmd.argv, "--device") or "").startswith("cuda") and not torch.cuda.is_available():
        return f"needs CUDA: {cmd.text}"
    if option_value(cmd.argv, "--data") == "fashion-mnist":
        try:
            datasets.by_name("fashion-mnist", split="test", limit=1)
        except FileNotFoundError as err:
            return f"Fashion-MNIST files missing ({err}): {cmd.text}"
    return None


def launch(cmd: Command) -> list[str]:
    """``python -m <program>`` with tiny arguments; torchrun lines on local processes (2 on CPU)."""
    if cmd.nproc is None:
        return [sys.executable, "-m", cmd.program, *tiny(cmd)]
    cuda = (option_value(cmd.argv, "--device") or "").startswith("cuda")
    nproc = min(cmd.nproc, torch.cuda.device_count()) if cuda else 2
    return [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={nproc}",
            "-m", cmd.program, *tiny(cmd)]


def subprocess_env(**extra) -> dict:
    """This checkout's packages first on the path (installed or not)."""
    path = os.pathsep.join([str(ROOT)] + [p for p in [os.environ.get("PYTHONPATH")] if p])
    return dict(os.environ, PYTHONPATH=path, MPLBACKEND="Agg", **extra)


@pytest.fixture(scope="module")
def command_results(tmp_path_factory) -> dict:
    """Every README command run in one folder, the training commands before the others: per command a
    CompletedProcess, or the reason it is skipped. Two commands run at a time (one thread each; commands
    with the same ``--out`` one after the other); a command the README repeats runs once."""
    work = tmp_path_factory.mktemp("readme")
    env = subprocess_env(OMP_NUM_THREADS="1")
    done = {}  # launch argv → CompletedProcess

    def run_chain(chain):
        for argv in chain:
            done[argv] = subprocess.run(list(argv), cwd=work, env=env, capture_output=True, text=True,
                                        timeout=TIMEOUT_S)

    for training in (True, False):
        chains = {}  # --out → the commands writing there, in README order
        for cmd in COMMANDS:
            if (cmd.subcommand == "train") == training and not skip_reason(cmd):
                argv = tuple(launch(cmd))
                chain = chains.setdefault(option_value(cmd.argv, "--out") or argv, [])
                if argv not in chain:
                    chain.append(argv)
        with ThreadPoolExecutor(max_workers=2) as pool:
            list(pool.map(run_chain, chains.values()))
    return {id(cmd): skip_reason(cmd) or done[tuple(launch(cmd))] for cmd in COMMANDS}


@pytest.mark.slow
@pytest.mark.parametrize("cmd", COMMANDS, ids=[c.text.split("#")[0].strip() for c in COMMANDS])
def test_readme_command_runs(cmd, command_results):
    result = command_results[id(cmd)]
    if isinstance(result, str):
        pytest.skip(result)
    assert result.returncode == 0, f"{shlex.join(result.args)} exited {result.returncode}:\n{result.stderr[-4000:]}"


@pytest.mark.slow
@pytest.mark.parametrize("code", PYTHON_BLOCKS, ids=[f"python-block-{k + 1}" for k in range(len(PYTHON_BLOCKS))])
def test_readme_python_block_runs(code, tmp_path):
    result = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=subprocess_env(), capture_output=True,
                            text=True, timeout=TIMEOUT_S)
    assert result.returncode == 0, result.stderr[-4000:]


def test_tiny_keeps_every_option():
    cmd = parse_segment("comparison fig4 --out fig4 --full --hidden 4 8 16 --seed=3 --unknown-flag 7")
    assert tiny(cmd) == ["fig4", "--out", "fig4", "--hidden", "2", "3", "--seed=3", "--unknown-flag", "7",
                         "--preset", "smoke"]
    cmd = parse_segment("torchrun --nproc_per_node=4 -m bornmachine train --max-bond=64 --device cuda --out r")
    assert cmd.nproc == 4 and cmd.program == "bornmachine"
    assert tiny(cmd) == ["train", "--max-bond", "2", "--device", "cuda", "--out", "r", "--limit", "40",
                         "--n-samples", "4"]
    cmd = parse_segment("python -m rbm evaluate m.npz --data mnist5k --ais-betas 10000")
    assert cmd.program == "rbm" and tiny(cmd) == ["evaluate", "m.npz", "--data", "mnist5k", "--ais-betas", "50",
                                                  "--limit", "40"]
    assert parse_segment("pip install -e .") == "setup" and parse_segment("# a comment") == "comment"
    assert parse_segment("bytes ≈ (N/P) · D") is None


def test_readme_has_commands_of_every_program():
    assert {c.program for c in COMMANDS} == set(PROGRAMS)
    assert any(c.nproc for c in COMMANDS) and PYTHON_BLOCKS


def test_console_blocks_hold_only_known_commands():
    unknown = [line for line, parsed in console_lines(README) if any(p is None for p in parsed)]
    assert not unknown, f"README console lines that are neither commands nor set-up steps: {unknown}"
