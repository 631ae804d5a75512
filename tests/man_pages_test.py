#!/usr/bin/python3
"""The manual pages (docs/man/*.scd) against the programs they describe.

Each page is rendered with scdoc here, from the source, and then:
  * every option each program and each subcommand shows in its --help is a term of its page,
    in the right place (a subcommand's options in that subcommand's section);
  * every key the TOML parsers accept (asked of the programs: tests/config_keys.py) is a term of
    rpcgate.toml(5), in the section of its table;
  * `MANWIDTH=80 man --warnings -l PAGE` prints no warning and no line wider than 80 columns;
  * the pages have the sections a man page has (NAME, SYNOPSIS, ..., SEE ALSO);
  * the build's pages (build/man/NAME.SECTION.gz, cmake/Man.cmake) are these pages, compressed
    without name or timestamp (gzip -n);
  * the example of rpcgate.toml(5) is a valid configuration.
The checker is also run on a page with one option taken out, and must report it.
Skips (77) when scdoc or man is not installed.
"""
import gzip
import os
import re
import shutil
import subprocess
import tempfile
import unittest

import config_keys
import rpcgate_testlib

BIN = config_keys.BIN
MAN_SOURCE = os.path.join(config_keys.SOURCE, "docs", "man")
BUILT_MAN = os.path.join(BIN, "..", "man")

PROGRAMS = {  # program -> its page
    "rpcgate": "rpcgate.1",
    "rpcgate-epmd": "rpcgate-epmd.8",
    "rpcgate-fwd": "rpcgate-fwd.8",
    "rpcgate-bench": "rpcgate-bench.1",
    "rpcgate-echo": "rpcgate-echo.1",
}
PAGES = [*PROGRAMS.values(), "rpcgate.toml.5"]
PROGRAM_SECTIONS = ["NAME", "SYNOPSIS", "DESCRIPTION", "OPTIONS", "EXIT STATUS", "EXAMPLES",
                    "SEE ALSO"]
DAEMON_SECTIONS = ["SIGNALS", "FILES"]
CONFIG_SECTIONS = ["NAME", "SYNOPSIS", "DESCRIPTION", "[policy]", "[epmd]", "[firewall]",
                   "EXAMPLES", "SEE ALSO"]
OPTION_BOUNDARY = r"(?<![\w-]){}(?![\w-])"


def render(page, source_dir=MAN_SOURCE):
    with open(os.path.join(source_dir, page + ".scd"), "rb") as f:
        r = subprocess.run(["scdoc"], input=f.read(), capture_output=True, timeout=30)
    assert r.returncode == 0, f"scdoc {page}.scd: {r.stderr.decode()}"
    return r.stdout.decode()


def plain(roff_line):
    """A roff line as text: font changes and zero-width escapes removed."""
    line = re.sub(r"\\f[BIRP]", "", roff_line)
    return (line.replace("\\&", "").replace("\\(aq", "'").replace("\\*(Aq", "'")
            .replace("\\e", "\\").replace("\\-", "-"))


def sections(roff):
    """{(".SH title", ".SS title" or ""): [definition terms]} - a term is the line before an
    indented block (`.RS 4`), e.g. "-c, --config FILE" or "listen = [ADDR:PORT, ...]"."""
    out = {}
    sh, ss = "", ""
    lines = roff.splitlines()
    for i, line in enumerate(lines):
        if line.startswith(".SH "):
            sh, ss = plain(line[4:]).strip('"'), ""
            out.setdefault((sh, ""), [])
        elif line.startswith(".SS "):
            ss = plain(line[4:]).strip('"')
            out.setdefault((sh, ss), [])
        elif line == ".RS 4" and i > 0 and not lines[i - 1].startswith("."):
            out.setdefault((sh, ss), []).append(plain(lines[i - 1]))
    return out


def help_tree(program, path=()):
    """{subcommand path: [options]} from `program [path...] --help`, recursively (CLI11's layout:
    "GROUP:" headings - "Options" or another option group, "Positionals", "Subcommands" - each
    over a list of entries indented by two spaces)."""
    r = subprocess.run([os.path.join(BIN, program), *path, "--help"], capture_output=True,
                       text=True, timeout=30)
    assert r.returncode == 0, f"{program} {' '.join(path)} --help: exit {r.returncode}"
    options, subcommands, part = [], [], None
    for line in r.stdout.splitlines():
        if re.match(r"^\S.*:$", line):
            part = line[:-1]
            continue
        m = re.match(r"^  (\S+)", line)
        if not m:
            continue
        if part not in ("Positionals", "Subcommands") and m.group(1).startswith("-"):
            # "-c,--config TEXT" / "--json" / "-h,--help"
            options += [o for o in m.group(1).split(",") if o.startswith("-")]
        elif part == "Subcommands":
            subcommands.append(m.group(1))
    assert options, f"{program} {' '.join(path)} --help listed no option:\n{r.stdout}"
    tree = {tuple(path): options}
    for sub in subcommands:
        tree.update(help_tree(program, (*path, sub)))
    return tree


def missing_options(program, roff):
    """The options of `program` (and its subcommands) that are no term of the page, as
    "subcommand: --option" strings. Top-level options belong to OPTIONS; a subcommand's to the
    .SS sections whose title names the subcommand (e.g. "policy check", or "Load options
    (epm-map, echo, connect)"). A subcommand's -h/--help is documented once, at the top."""
    secs = sections(roff)
    missing = []
    for path, options in help_tree(program).items():
        if not path:
            terms = secs.get(("OPTIONS", ""), [])
        else:
            name = re.compile(OPTION_BOUNDARY.format(re.escape(" ".join(path))))
            terms = [t for (sh, ss), ts in secs.items() if ss and name.search(ss) for t in ts]
        for option in options:
            if path and option in ("-h", "--help"):
                continue
            pattern = re.compile(OPTION_BOUNDARY.format(re.escape(option)))
            if not any(pattern.search(t) for t in terms):
                missing.append(f"{' '.join((program, *path))}: {option}")
    return missing


class ManPages(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        if shutil.which("scdoc") is None or shutil.which("man") is None:
            rpcgate_testlib.skip("scdoc or man is not installed (make deps installs them)")
        cls.roff = {page: render(page) for page in PAGES}
        cls.dir = tempfile.mkdtemp(prefix="rpcgate-man-")
        for page, text in cls.roff.items():
            with open(os.path.join(cls.dir, page), "w") as f:
                f.write(text)

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.dir)

    def test_every_page_is_there_and_no_other(self):
        sources = sorted(n[:-4] for n in os.listdir(MAN_SOURCE) if n.endswith(".scd"))
        self.assertEqual(sorted(PAGES), sources)

    def test_every_option_of_every_program_is_in_its_page(self):
        for program, page in PROGRAMS.items():
            with self.subTest(program=program):
                self.assertEqual([], missing_options(program, self.roff[page]),
                                 f"options missing from {page}")

    def test_a_missing_option_is_reported(self):
        # The checker must be able to fail: take --max-towers out of rpcgate-fwd(8).
        roff = self.roff["rpcgate-fwd.8"]
        self.assertIn("\\fB--max-towers\\fR", roff)
        cut = roff.replace("\\fB--max-towers\\fR", "\\fBmax towers\\fR")
        self.assertEqual(["rpcgate-fwd: --max-towers"], missing_options("rpcgate-fwd", cut))
        # ... and a subcommand's option documented only in another subcommand's section.
        roff = self.roff["rpcgate.1"]
        start = roff.index(".SS policy export")
        end = roff.index(".SS", start + 1)
        section = roff[start:end].replace("\\fB--udp\\fR", "\\fB--udp-not\\fR")
        cut = roff[:start] + section + roff[end:] + "\n.SS lookup\n\\fB--udp\\fR\n.RS 4\nx\n.RE\n"
        self.assertEqual(["rpcgate policy export: --udp"], missing_options("rpcgate", cut))

    def test_every_toml_key_is_in_rpcgate_toml_5(self):
        secs = sections(self.roff["rpcgate.toml.5"])
        for table in config_keys.TABLES:
            keys = config_keys.known_keys(table)
            if "." in table:
                where = (f"[{table.split('.')[0]}]", f"[[{table}]]")
            else:
                where = (f"[{table}]", "")
            self.assertIn(where, secs, f"rpcgate.toml(5) has no section {where}")
            terms = secs[where]
            for key in keys:
                with self.subTest(table=table, key=key):
                    sub = config_keys.SUBTABLES.get(table, {}).get(key)
                    if sub:  # "rule" in [firewall] is the [[firewall.rule]] tables
                        self.assertIn((where[0], f"[[{sub}]]"), secs)
                        continue
                    self.assertTrue(any(re.match(re.escape(key) + " = ", t) for t in terms),
                                    f"[{table}] {key} is not a term of rpcgate.toml(5) {where}")

    def test_sections(self):
        for page in PAGES:
            titles = [t for t, sub in sections(self.roff[page]) if not sub]
            wanted = list(CONFIG_SECTIONS if page.endswith(".5") else PROGRAM_SECTIONS)
            if page.endswith(".8"):
                wanted += DAEMON_SECTIONS
            with self.subTest(page=page):
                self.assertEqual([], [s for s in wanted if s not in titles])
                self.assertEqual("NAME", titles[0])
                self.assertEqual("SEE ALSO", titles[-1])
                name = page.rsplit(".", 1)
                self.assertIn(f'.TH "{name[0]}" "{name[1]}"', self.roff[page])

    def assert_renders_cleanly(self, page, path):
        """`MANWIDTH=80 man --warnings -l path`: no warning, no line over 80 columns."""
        env = dict(rpcgate_testlib.ENV, MANWIDTH="80", MANPAGER="cat", PAGER="cat")
        r = subprocess.run(["man", "--warnings", "-l", path], capture_output=True, text=True,
                           timeout=60, env=env)
        self.assertEqual(0, r.returncode, r.stderr)
        # troff's warnings ("troff: <standard input>:7: warning: ...") go to stderr.
        self.assertEqual("", r.stderr)
        output = r.stdout + r.stderr
        self.assertEqual([], [l for l in output.splitlines() if "warning:" in l])
        if page == "rpcgate-fwd.8":  # not even the word, as `| grep warning` checks it
            self.assertEqual([], [l for l in output.splitlines() if "warning" in l])
        self.assertEqual([], [l for l in r.stdout.splitlines() if len(l) > 80])
        self.assertIn("SEE ALSO", r.stdout)

    def test_man_renders_without_warnings_within_80_columns(self):
        for page in PAGES:
            with self.subTest(page=page):
                self.assert_renders_cleanly(page, os.path.join(self.dir, page))

    def test_the_build_installs_these_pages(self):
        built = os.path.realpath(BUILT_MAN)
        if not os.path.isdir(built):
            self.skipTest(f"{built} is missing: the build ran without scdoc")
        for page in PAGES:
            with self.subTest(page=page):
                path = os.path.join(built, page + ".gz")
                with open(path, "rb") as f:
                    raw = f.read()
                # gzip -n: no original name (FLG.FNAME, bit 3) and MTIME 0: reproducible.
                self.assertEqual(0, raw[3] & 0x08, f"{path} stores a file name")
                self.assertEqual(b"\0\0\0\0", raw[4:8], f"{path} stores a timestamp")
                # The same page, but for its date (the day it was rendered).
                undated = lambda t: re.sub(r'^\.TH (".*?" ".*?") ".*?"', r".TH \1",
                                           t, flags=re.M)
                self.assertEqual(undated(self.roff[page]),
                                 undated(gzip.decompress(raw).decode()),
                                 f"{path} is stale: rebuild (cmake --build)")
                self.assert_renders_cleanly(page, path)

    def test_the_example_of_rpcgate_toml_5_is_valid(self):
        roff = self.roff["rpcgate.toml.5"]
        start = roff.index(".SH EXAMPLES")
        block = re.search(r"^\.nf\n\.RS 4\n(.*?)^\.fi", roff[start:], flags=re.M | re.S)
        toml = plain(block.group(1))
        self.assertIn("[[firewall.rule]]", toml)
        path = os.path.join(self.dir, "example.toml")
        with open(path, "w") as f:
            f.write(toml)
        r = subprocess.run([os.path.join(BIN, "rpcgate"), "policy", "check", path],
                           capture_output=True, text=True, timeout=30)
        self.assertEqual(0, r.returncode, r.stdout + r.stderr)
        self.assertIn("valid, restricted: internet 50000-50099", r.stdout)
        r = subprocess.run([os.path.join(BIN, "rpcgate-fwd"), "--check", "--config", path],
                           capture_output=True, text=True, timeout=30)
        self.assertEqual(0, r.returncode, r.stdout + r.stderr)
        self.assertIn("1 rule(s)", r.stdout)
        self.assertIn("dc-replication", r.stdout)


if __name__ == "__main__":
    rpcgate_testlib.main()
