"""``python -m airflow_provider_entra.mapping``: check a mapping file without Airflow, print the JSON Schema.

``check MAPPING [--sample EXPORT]`` reports every problem of the file (its structure, and the columns a
sample export lacks, with the nearest names it has), then runs the pure pipeline steps on the sample (extract,
validate, normalise, map: :func:`airflow_provider_entra.provisioning.pipeline.transform` on an empty ledger in
a temporary folder) and prints the quarantine and the first SCIM bulk requests it would send. Nothing is sent.

Exit codes: 0 fine; 1 problems (the mapping, a column, or quarantined sample rows); 2 usage errors (bad
arguments, a file that does not exist).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import IO

from airflow_provider_entra.mapping._file import MappingFile, MappingFileError, load_mapping_file
from airflow_provider_entra.mapping._schema import json_schema_text
from airflow_provider_entra.provisioning.normalise import HrSchema
from airflow_provider_entra.scim.errors import MappingError

__all__ = ["main"]

EXIT_OK = 0
EXIT_PROBLEMS = 1
EXIT_USAGE = 2
#: The domain of derived UPNs when neither --upn-domain nor the mapping's source.upn.domain gives one
#: (reserved for examples by RFC 2606).
EXAMPLE_DOMAIN = "example.com"
_LAYOUT_WIDTH = 72


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m airflow_provider_entra.mapping",
        description="Check an Entra provisioning mapping file, or print its JSON Schema.",
    )
    commands = parser.add_subparsers(dest="command", required=True)
    check = commands.add_parser(
        "check",
        help="report every problem of a mapping file; with --sample, show what it would send",
        description="Report every problem of a mapping file; with --sample, run the pipeline's pure steps "
        "on an export and print the quarantine and the first SCIM bulk requests (nothing is sent).",
    )
    check.add_argument("mapping", help="the mapping file (YAML or JSON; a path or an fsspec URL)")
    check.add_argument("--sample", metavar="EXPORT", help="an HR export (CSV) to run the mapping on")
    check.add_argument(
        "--upn-domain",
        metavar="D",
        help=f"domain of derived UPNs (default: source.upn.domain, else {EXAMPLE_DOMAIN})",
    )
    check.add_argument(
        "--requests",
        metavar="N",
        type=int,
        default=1,
        help="how many bulk requests to print (default 1; 0 for none)",
    )
    commands.add_parser("schema", help="print the JSON Schema of mapping files")
    return parser


def _summary(mapping: MappingFile) -> str:
    layout = mapping.source.layout or (
        "source block" if mapping.has_source else "no source block: Microsoft's CSV2SCIM layout"
    )
    layout = " ".join(layout.split())
    if len(layout) > _LAYOUT_WIDTH:
        layout = layout[: _LAYOUT_WIDTH - 1].rstrip() + "…"
    schema = HrSchema()
    columns = set(mapping.source.columns()) | set(mapping.attributes.source_columns)
    columns -= {schema.upn, schema.mail_nickname}
    return (
        f"{mapping.path}: a valid mapping ({layout}; {len(mapping.attributes.paths)} attributes; "
        f"reads {len(columns)} export columns)"
    )


def _run_sample(mapping: MappingFile, sample: str, upn_domain: str, requests: int, out: IO[str]) -> int:
    """Run the pure pipeline steps on ``sample``; print what they give; return the exit code."""
    import pandas as pd

    from airflow_provider_entra.provisioning.hr_source import HrSourceError
    from airflow_provider_entra.provisioning.pipeline import extract_csv, transform
    from airflow_provider_entra.scim import MappedRecords, build_bulk_requests

    with tempfile.TemporaryDirectory(prefix="entra-mapping-check-") as folder:
        work = Path(folder)
        try:
            extracted = extract_csv(sample, work / "hr_raw.parquet")
        except HrSourceError as exc:
            print(f"{sample}: {exc}", file=out)
            return EXIT_PROBLEMS
        print(f"{sample}: {extracted['rows']} rows, {len(extracted['columns'])} columns", file=out)
        for warning in extracted.get("warnings") or []:
            print(f"{sample}: warning: {warning}", file=out)
        problems = mapping.column_problems(extracted["columns"])
        if problems:
            for problem in problems:
                print(problem, file=out)
            return EXIT_PROBLEMS
        try:
            summary = transform(
                extracted["path"],
                mapping.path,
                work,
                upn_domain=upn_domain,
                ledger=work / "ledger",
                schema=mapping.source.to_hr_schema(),
            )
        except (MappingError, ValueError) as exc:
            print(f"{sample}: {exc}", file=out)
            return EXIT_PROBLEMS
        print(
            f"valid {summary['valid']}, mapped {summary['mapped']}, quarantined {summary['quarantined']}"
            + (
                " ("
                + ", ".join(f"{n} at {stage}" for stage, n in summary["quarantined_by_stage"].items())
                + ")"
                if summary["quarantined"]
                else ""
            ),
            file=out,
        )
        for reason, count in summary["top_reasons"]:
            print(f"  {count} x {reason}", file=out)
        mapped = pd.read_parquet(summary["mapped_path"])
        built = build_bulk_requests(MappedRecords.from_frame(mapped, mapping.attributes))
        shown = list(built.requests)[: max(requests, 0)]
        print(
            f"{built.operation_count} operation(s) in {len(built.requests)} bulk request(s)"
            + (f"; the first {len(shown)}:" if shown else ""),
            file=out,
        )
        for request in shown:
            print(json.dumps(request, indent=2, ensure_ascii=False), file=out)
        return EXIT_PROBLEMS if summary["quarantined"] else EXIT_OK


def check(
    mapping_path: str,
    *,
    sample: str | None = None,
    upn_domain: str | None = None,
    requests: int = 1,
    out: IO[str] = sys.stdout,
) -> int:
    """Check a mapping file (and run it on a sample export); print the findings to ``out``.

    :param mapping_path: the mapping file.
    :param sample: an HR export to run the mapping on.
    :param upn_domain: the domain of derived UPNs (default: the mapping's, else ``example.com``).
    :param requests: how many bulk requests to print.
    :return: the exit code (0 fine, 1 problems, 2 a file that does not exist).
    """
    try:
        mapping = load_mapping_file(mapping_path)
    except FileNotFoundError:
        print(f"{mapping_path}: no such file", file=out)
        return EXIT_USAGE
    except MappingFileError as exc:
        for problem in exc.problems:
            print(problem, file=out)
        return EXIT_PROBLEMS
    print(_summary(mapping), file=out)
    if sample is None:
        return EXIT_OK
    from airflow_provider_entra._fsio import exists

    if not exists(sample):
        print(f"{sample}: no such file", file=out)
        return EXIT_USAGE
    domain = upn_domain or (mapping.source.upn.domain if mapping.source.upn else None) or EXAMPLE_DOMAIN
    return _run_sample(mapping, sample, domain, requests, out)


def main(argv: Sequence[str] | None = None) -> int:
    """The command line; returns the exit code.

    :param argv: the arguments (default ``sys.argv[1:]``).
    """
    args = _parser().parse_args(argv)
    if args.command == "schema":
        sys.stdout.write(json_schema_text())
        return EXIT_OK
    if args.requests < 0:
        print("--requests must be 0 or more", file=sys.stderr)
        return EXIT_USAGE
    return check(args.mapping, sample=args.sample, upn_domain=args.upn_domain, requests=args.requests)
