"""What every `heimdall` command shares: context, one-line errors, JSON or rich output."""

from __future__ import annotations

import functools
import json
import shlex
import sys
from collections.abc import Callable
from typing import Annotated, Any, TypeVar

import typer
from rich.console import Console
from rich.table import Table

from heimdall.errors import HeimdallError
from heimdall.evaluation.calibration import HEAVY_TAIL_RATIO
from heimdall.settings import Settings

console = Console(stderr=True)
F = TypeVar("F", bound=Callable[..., Any])

JsonFlag = Annotated[bool, typer.Option("--json", help="Print one JSON object on the last line of stdout.")]


def context() -> Any:
    """Read the settings once, configure logging and open the pipelines' context."""
    from heimdall.logging_setup import configure_logging
    from heimdall.pipelines import open_context

    settings = Settings()
    configure_logging(settings.log_level)
    return open_context(settings)


def fail(message: str, code: int = 1) -> None:
    """Print `error: <message>` as one line on stderr and exit with `code`."""
    typer.echo(f"error: {' '.join(str(message).split())}", err=True)
    raise typer.Exit(code)


def _hint(exc: HeimdallError, command_path: str) -> str:
    return str(exc.hint).replace("{command}", command_path)


def _resume_command(exc: BaseException, command: Any) -> str:
    """The command that continues an interrupted one: the exception's own, else this
    command line again (with the command's `resume_flag`, e.g. `--resume`, added)."""
    resume = getattr(exc, "resume", None)
    if resume:
        return str(resume)
    args = sys.argv[1:]
    flag = getattr(command, "resume_flag", None)
    if flag and flag not in args:
        args = [*args, flag]
    return "heimdall " + shlex.join(args)


def handle_errors(func: F) -> F:
    """Turn Heimdall's errors (and validation errors) into one line and exit code 1."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        from pydantic import ValidationError

        try:
            return func(*args, **kwargs)
        except HeimdallError as exc:
            path = getattr(wrapper, "command_path", "heimdall")
            fail(f"{exc} (hint: {_hint(exc, path)})" if exc.hint else str(exc))
        except ValidationError as exc:
            first = exc.errors()[0]
            fail(f"invalid value for {'.'.join(str(p) for p in first['loc'])}: {first['msg']}")
        except (KeyboardInterrupt, SystemExit) as exc:
            # A library may turn Ctrl-C into SystemExit (Lightning does); that is still Ctrl-C.
            if isinstance(exc, SystemExit) and not isinstance(exc.__context__, KeyboardInterrupt):
                raise
            if getattr(wrapper, "stopped_by_interrupt", False):
                # Ctrl-C is how a server is stopped: nothing to resume.
                fail("interrupted; stopped", code=130)
            fail(f"interrupted; resume with: {_resume_command(exc, wrapper)}", code=130)

    return wrapper  # type: ignore[return-value]


def emit(payload: Any, as_json: bool, render: Callable[[], None] | None = None) -> None:
    """Print `payload` as one JSON line (`--json`), or through `render`, or as pretty JSON."""
    if as_json:
        sys.stdout.write(json.dumps(payload, default=str) + "\n")
    elif render is not None:
        render()
    else:
        Console().print_json(json.dumps(payload, default=str))


def given_options(ctx: typer.Context, renamed: dict[str, str] | None = None) -> frozenset[str]:
    """Names of the command's options given on the command line (not left at their
    defaults), with `renamed` mapping a CLI parameter to the pipeline field it fills."""
    renamed = renamed or {}
    given = set()
    for name in ctx.params:
        source = ctx.get_parameter_source(name)
        if source is not None and source.name == "COMMANDLINE":
            given.add(renamed.get(name, name))
    return frozenset(given)


def print_value(label: str, value: Any, out: Console | None = None) -> None:
    """`label:` then the value on its own, indented line, never wrapped or cut (paths and
    models:/ references are what users copy)."""
    out = out or Console()
    out.print(f"{label}:", highlight=False)
    out.print(f"  {value}", soft_wrap=True, highlight=False)


def fmt_splits(counts: dict[str, int]) -> str:
    """Sample counts per split: `splits: train 700, val 150, test 150 samples`."""
    return "splits: " + ", ".join(f"{name} {counts.get(name, 0)}" for name in ("train", "val", "test")) + " samples"


def fmt_m(value: Any) -> str:
    """A distance in metres, as km above 10 km."""
    return f"{value / 1000:,.1f} km" if value >= 10_000 else f"{value:,.0f} m"


def fmt_axes(major_m: float, minor_m: float) -> str:
    """An ellipse's semi-axes as "major x minor" in one unit: metres, or km from 10 km (as `fmt_m`)."""
    if major_m >= 10_000:
        return f"{major_m / 1000:,.1f} x {minor_m / 1000:,.1f} km"
    return f"{major_m:,.0f} x {minor_m:,.0f} m"


#: What the coverage columns of `summary_table` and `distance_table` hold.
_COVERAGE_CAPTION = "1σ, 2σ, 95%: share of truths inside the 1-sigma, 2-sigma and 95% ellipses"


def summary_table(evaluation: dict[str, Any], title: str) -> Table:
    """The model-vs-baselines table of an evaluation summary."""
    # Short coverage headers, so the table fits an 80-column terminal; the caption says what they are.
    table = Table(title=title, caption=_COVERAGE_CAPTION)
    table.add_column("method", no_wrap=True)
    for column in ("median", "p90", "RMSE", "1σ", "2σ", "95%"):
        table.add_column(column, justify="right", no_wrap=True)
    c95 = evaluation.get("coverage_95")
    table.add_row(
        "model",
        fmt_m(evaluation["median_error_m"]),
        fmt_m(evaluation["p90_error_m"]),
        fmt_m(evaluation["rmse_m"]),
        f"{evaluation['coverage_1sigma']:.3f}",
        f"{evaluation['coverage_2sigma']:.3f}",
        "-" if c95 is None else f"{c95:.3f}",
    )
    for name, summary in evaluation.get("baselines", {}).items():
        table.add_row(name, fmt_m(summary["median_error_m"]), fmt_m(summary["p90_error_m"]), fmt_m(summary["rmse_m"]),
                      "-", "-", "-")
    if "crlb_rmse_m" in evaluation:
        table.add_row("CRLB (bound)", fmt_m(evaluation["crlb_median_m"]), "-", fmt_m(evaluation["crlb_rmse_m"]),
                      "-", "-", "-")
    return table


def distance_table(evaluation: dict[str, Any]) -> Table | None:
    """The model's error and coverage by distance to the training data (measured data), or None."""
    groups = evaluation.get("by_distance_to_training")
    if not groups:
        return None
    table = Table(title="error by distance to the training data", caption=_COVERAGE_CAPTION)
    for column in ("distance", "samples", "median", "1σ", "2σ", "95%"):
        table.add_column(column, justify="right", no_wrap=True)
    for group in groups:
        upper = fmt_m(group["to_m"]) if group["to_m"] is not None else "..."
        c95 = f"{group['coverage_95']:.3f}" if "coverage_95" in group else "-"
        table.add_row(f"{fmt_m(group['from_m'])} - {upper}", str(group["n"]), fmt_m(group["median_error_m"]),
                      f"{group['coverage_1sigma']:.3f}", f"{group['coverage_2sigma']:.3f}", c95)
    return table


#: Under `fit_table` (printed as a line: a caption wraps to the narrow table's width).
FIT_TABLE_NOTE = "1σ/2σ/95%: share of truths inside each ellipse (calibrated: 0.393/0.865/0.950)"

def fit_table_notes(fit: dict[str, float]) -> list[str]:
    """The lines under `fit_table`: what its columns mean and, where the errors are heavy-tailed,
    what that does to the 1- and 2-sigma ellipses."""
    notes = [FIT_TABLE_NOTE, "tail: radius holding 86.5% of truths over the one holding 39.3% (Gaussian: 2)"]
    ratios = [v for k, v in fit.items() if k.endswith("_tail_ratio")]
    if ratios and max(ratios) > HEAVY_TAIL_RATIO:
        notes.append(f"tail up to {max(ratios):.1f}: some answers miss by far more than their ellipse says, so no "
                     "one width holds 0.393 and 0.865 at once; the 95% ellipse is sized on those misses")
    return notes


def fit_table(fit: dict[str, float]) -> Table:
    """What a radio map's cross-fitting measured, per scheme: each labelled transmission
    answered by a map fitted without it (out-of-fold median error, coverage and tail ratio;
    the columns are explained by `fit_table_notes`)."""
    k = fit.get("ellipse95_sigmas") or 0.0
    table = Table()
    for column in ("folds", "median", "1σ", "2σ", f"95% ({k:.2f}σ)" if k else "95%", "tail"):
        table.add_column(column, justify="right", no_wrap=True)
    for scheme in ("random", "spatial", "time"):
        if f"cv_{scheme}_coverage_1sigma" not in fit:
            continue  # no time blocks without timestamps
        median = fit.get(f"cv_{scheme}_median_error_m")  # the time blocks calibrate only: no median
        c95, tail = fit.get(f"cv_{scheme}_coverage_95"), fit.get(f"cv_{scheme}_tail_ratio")
        table.add_row(scheme, "-" if median is None else fmt_m(median), f"{fit[f'cv_{scheme}_coverage_1sigma']:.3f}",
                      f"{fit[f'cv_{scheme}_coverage_2sigma']:.3f}", "-" if c95 is None else f"{c95:.3f}",
                      "-" if tail is None else f"{tail:.1f}")
        if f"cv_{scheme}_smoothed_within_1sigma" in fit:
            # The same transmissions smoothed along their tracks, as the runtime answers timestamped batches.
            table.add_row(f"{scheme}, tracks", fmt_m(fit[f"cv_{scheme}_smoothed_median_m"]),
                          f"{fit[f'cv_{scheme}_smoothed_within_1sigma']:.3f}",
                          f"{fit[f'cv_{scheme}_smoothed_within_2sigma']:.3f}", "-", "-")
    return table


QuietFlag = Annotated[bool, typer.Option("--quiet", "-q", help="No progress bars or step lines; errors only.")]
