"""Every argument of the three command lines (bornmachine, rbm, comparison: every subcommand) has a help
line, and every option with a default shows it in ``--help`` as "(default: ...)".

The parsers come from each CLI's ``build_parser()``; the test walks all their actions, so an option
added without a help line, or with a default its help does not show, fails here.
"""
from __future__ import annotations

import argparse
import re

import pytest

from bornmachine.cli import build_parser as bornmachine_parser
from comparison.cli import build_parser as comparison_parser
from rbm.cli import build_parser as rbm_parser


def walk(parser: argparse.ArgumentParser):
    """The parser and, depth first, every subcommand's parser."""
    yield parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub in action.choices.values():
                yield from walk(sub)


PARSERS = [p for build in (bornmachine_parser, rbm_parser, comparison_parser) for p in walk(build())]


def test_every_cli_and_subcommand_is_walked():
    progs = {p.prog for p in PARSERS}
    assert {"bornmachine", "bornmachine train", "bornmachine sample", "bornmachine evaluate", "bornmachine entropy",
            "rbm", "rbm train", "rbm evaluate", "comparison", "comparison report", "comparison fig3",
            "comparison fig4", "comparison born-vs-boltzmann", "comparison structure"} == progs


def help_blocks(parser: argparse.ArgumentParser) -> dict[str, str]:
    """Formatted ``--help`` split per argument: first token of its invocation → its text, whitespace-normalised."""
    blocks, current = {}, None
    for line in parser.format_help().splitlines():
        if re.match(r"^  \S", line):  # an argument's invocation starts a block
            current = line.split()[0].rstrip(",")
            blocks[current] = line
        elif current is not None and line.startswith("   "):
            blocks[current] += " " + line
        else:
            current = None
    return {k: " ".join(v.split()) for k, v in blocks.items()}


def invocation(action: argparse.Action) -> str:
    return action.option_strings[0] if action.option_strings else (action.metavar or action.dest)


@pytest.mark.parametrize("parser", PARSERS, ids=[p.prog for p in PARSERS])
def test_every_argument_has_a_help_line(parser):
    for action in parser._actions:
        assert action.help and action.help is not argparse.SUPPRESS and action.help.strip(), \
            f"{parser.prog} {invocation(action)}: no help"
        if isinstance(action, argparse._SubParsersAction):
            for choice in action._choices_actions:
                assert choice.help and choice.help.strip(), f"{parser.prog} {choice.dest}: no help"


@pytest.mark.parametrize("parser", PARSERS, ids=[p.prog for p in PARSERS])
def test_every_default_is_shown(parser):
    blocks = help_blocks(parser)
    checked = 0
    for action in parser._actions:
        if not action.option_strings or action.default is None or action.default is argparse.SUPPRESS:
            continue  # positionals; options without a default of their own (their help says what then)
        text = blocks.get(action.option_strings[0])
        assert text is not None, f"{parser.prog} {action.option_strings[0]}: not in --help"
        assert f"(default: {action.default})" in text, f"{parser.prog}: {text!r} does not show its default"
        checked += 1
    if parser.prog.count(" "):  # every subcommand has options with defaults
        assert checked > 0
