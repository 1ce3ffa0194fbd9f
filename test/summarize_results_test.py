"""Tests of summarize_results.py against synthetic bazel output and test.xml files."""
import os
import shutil
import tempfile
import unittest

import summarize_results as sr

GTEST_XML = """<?xml version="1.0" encoding="UTF-8"?>
<testsuites tests="4" failures="1">
  <testsuite name="A" tests="4">
    <testcase name="ok1" status="run" result="completed" classname="A"/>
    <testcase name="ok2" status="run" result="completed" classname="A"/>
    <testcase name="bad" status="run" result="completed" classname="A">
      <failure message="boom"/>
    </testcase>
    <testcase name="skip" status="run" result="skipped" classname="A"><skipped/></testcase>
  </testsuite>
</testsuites>
"""
ALL_PASS_XML = """<testsuites><testsuite name="B">
<testcase name="x" classname="B"/><testcase name="y" classname="B"/>
</testsuite></testsuites>"""


class SummarizeTest(unittest.TestCase):
    def setUp(self):
        self.dir = tempfile.mkdtemp()

    def tearDown(self):
        shutil.rmtree(self.dir, ignore_errors=True)  # the suite leaves nothing in /tmp

    def write_xml(self, pkg, name, text):
        d = os.path.join(self.dir, pkg, name)
        os.makedirs(d, exist_ok=True)
        with open(os.path.join(d, "test.xml"), "w") as f:
            f.write(text)

    def test_counts_cases_not_targets(self):
        self.write_xml("a", "t1", GTEST_XML)
        self.write_xml("b/c", "t2", ALL_PASS_XML)
        out = ("//a:t1      FAILED in 0.3s\n"
               "  /path/to/test.log\n"
               "//b/c:t2     (cached) PASSED in 0.1s\n"
               "Executed 2 out of 2 tests\n")
        r = sr.summarize(out, self.dir)
        self.assertEqual((r["passed"], r["failed"], r["skipped"]), (4, 1, 1))
        self.assertEqual(r["failures"], ["//a:t1: A.bad"])

    def test_failed_target_without_failing_case_still_fails(self):
        # e.g. a sanitizer report after all cases passed, or a timeout.
        self.write_xml("a", "leaky", ALL_PASS_XML)
        out = "//a:leaky   FAILED in 1.0s\n//a:slow   TIMEOUT in 300.0s\n//a:nb  NO STATUS\n"
        r = sr.summarize(out, self.dir)
        self.assertEqual(r["passed"], 2)
        self.assertEqual(r["failed"], 3)

    def test_sharded_target_counts_every_shard(self):
        self.write_xml("i", "sharded/shard_1_of_2", ALL_PASS_XML)
        self.write_xml("i", "sharded/shard_2_of_2", GTEST_XML)
        r = sr.summarize("//i:sharded   FAILED in 9.0s\n", self.dir)
        self.assertEqual((r["passed"], r["failed"], r["skipped"]), (4, 1, 1))
        self.assertEqual(r["failures"], ["//i:sharded: A.bad"])

    def test_build_failure_counts(self):
        r = sr.summarize("//x:y   FAILED TO BUILD\n", self.dir)
        self.assertEqual((r["passed"], r["failed"]), (0, 1))

    def test_passing_target_without_xml_counts_once(self):
        r = sr.summarize("//x:sh_test   PASSED in 2.0s\n", self.dir)
        self.assertEqual((r["passed"], r["failed"]), (1, 0))

    def test_ignores_unrelated_lines(self):
        r = sr.summarize("INFO: //a:b PASSED\nERROR: something //c:d FAILED\n", self.dir)
        self.assertEqual((r["passed"], r["failed"]), (0, 0))


if __name__ == "__main__":
    unittest.main()
