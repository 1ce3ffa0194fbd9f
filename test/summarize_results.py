#!/usr/bin/env python3
"""Counts test cases of one `bazel test` run and prints `N passed, N failed`.

Bazel's own summary counts targets; CI wants test cases. For every test target named
in the bazel output (`//pkg:name   PASSED in 0.1s`, `(cached) PASSED`, `FAILED`,
`TIMEOUT`, `NO STATUS`, ...), this reads <testlogs>/pkg/name/test.xml (one per shard_*_of_* directory for a
sharded target; written by
gtest, or synthesized by Bazel) and counts its <testcase> elements. A target that did
not pass but whose XML shows no failing case (crash at exit, sanitizer report,
timeout, build failure) counts as one failed case, so no failure is ever lost.

Usage: summarize_results.py BAZEL_OUTPUT_FILE TESTLOGS_DIR [--label NAME] [--json OUT]
"""
import argparse
import glob
import json
import os
import re
import sys
import xml.etree.ElementTree as ET

STATUS_RE = re.compile(
    r"^(//[^\s:]*:\S+)\s+(?:\(cached\)\s+)?"
    r"(PASSED|FAILED TO BUILD|FAILED|TIMEOUT|FLAKY|NO STATUS|INCOMPLETE|SKIPPED)\b")


def parse_targets(output_text):
    """Returns {target: status} from bazel test's per-target summary lines."""
    targets = {}
    for line in output_text.splitlines():
        m = STATUS_RE.match(line.strip())
        if m:
            targets[m.group(1)] = m.group(2)
    return targets


def count_xml(path):
    """Returns (passed, failed, skipped, failed_names) of one test.xml."""
    tree = ET.parse(path)
    passed = failed = skipped = 0
    failed_names = []
    for case in tree.iter("testcase"):
        name = "%s.%s" % (case.get("classname", ""), case.get("name", ""))
        if case.find("failure") is not None or case.find("error") is not None:
            failed += 1
            failed_names.append(name)
        elif (case.find("skipped") is not None or case.get("status") == "notrun"
              or case.get("result") == "skipped"):
            skipped += 1
        else:
            passed += 1
    return passed, failed, skipped, failed_names


def summarize(output_text, testlogs):
    result = {"passed": 0, "failed": 0, "skipped": 0, "failures": []}
    for target, status in sorted(parse_targets(output_text).items()):
        pkg, name = target[2:].split(":", 1)
        # A sharded target (shard_count) has one test.xml per shard directory.
        target_dir = os.path.join(testlogs, pkg, name)
        xmls = [os.path.join(target_dir, "test.xml")]
        if not os.path.exists(xmls[0]):
            xmls = sorted(glob.glob(os.path.join(target_dir, "shard_*_of_*", "test.xml")))
        passed = failed = skipped = 0
        names = []
        if status not in ("FAILED TO BUILD", "NO STATUS", "SKIPPED"):
            for xml in xmls:
                if not os.path.exists(xml):
                    continue
                try:
                    p, f, s, n = count_xml(xml)
                except ET.ParseError:
                    continue
                passed, failed, skipped, names = passed + p, failed + f, skipped + s, names + n
        if status == "SKIPPED":
            skipped = max(skipped, 1)
        elif status not in ("PASSED", "FLAKY") and failed == 0:
            failed = 1
            names = ["%s (%s)" % (target, status)]
        elif status in ("PASSED", "FLAKY") and passed + failed + skipped == 0:
            passed = 1  # A passing target without cases (e.g. sh_test) is one case.
        result["passed"] += passed
        result["failed"] += failed
        result["skipped"] += skipped
        result["failures"] += ["%s: %s" % (target, n) for n in names]
    return result


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("bazel_output")
    ap.add_argument("testlogs")
    ap.add_argument("--label", default="tests")
    ap.add_argument("--json")
    args = ap.parse_args()
    with open(args.bazel_output, errors="replace") as f:
        result = summarize(f.read(), args.testlogs)
    for failure in result["failures"]:
        print("[%s] FAILED %s" % (args.label, failure))
    print("[%s] %d test cases passed, %d failed, %d skipped" %
          (args.label, result["passed"], result["failed"], result["skipped"]))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(result, f)
    return 0


if __name__ == "__main__":
    sys.exit(main())
