"""What every benchmark script shares: the --threads option and the header naming the machine."""

from __future__ import annotations

import argparse
import os
import platform
import shlex
import sys

import torch
from rich.console import Console


def add_threads_option(ap: argparse.ArgumentParser) -> None:
    ap.add_argument("--threads", type=int, default=None,
                    help="torch intra-op threads (default: leave torch's default)")


def start(args: argparse.Namespace) -> Console:
    """Apply --threads, then print the command line and the machine it runs on."""
    if args.threads:
        torch.set_num_threads(args.threads)
    console = Console(soft_wrap=True)
    console.print(f"$ {shlex.join(['python', *sys.argv])}")
    console.print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, "
                  f"{os.cpu_count()} CPUs, {platform.processor() or platform.machine()}, "
                  f"cuda={torch.cuda.is_available()}, load average {os.getloadavg()[0]:.2f}")
    return console
