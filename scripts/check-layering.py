#!/usr/bin/env python3
"""Checks that every CMake target links only what README.md's layering table
("## Layout": directory | what it is | may use) allows its directory.

    scripts/check-layering.py [REPO_ROOT]

Reads the table, then every CMakeLists.txt and *.cmake of the repository
(add_library / add_executable / target_link_libraries), and prints one line
per link outside its row; exits 1 when there is any, 2 when the table or a
link cannot be understood. Registered with ctest as `layering` (label unit).

A target belongs to the table row whose directory holds the CMake file that
defines it (the longest match; `plugins/<name>/` matches every plugin). In a
"may use" cell, `dir/` names another row's targets, other words name
external libraries (EXTERNAL below), and "backend's client library" admits
any external library. Test targets (…_test, …_testing, prism_test_…) and
benchmarks (prism_bench_…) may
also use TEST_EXTRAS. A row may always use its own targets and the C++
standard library's threads.
"""

import os
import re
import sys

# Words of the table -> patterns of the CMake targets they stand for.
EXTERNAL = {
    "libcurl": [r"CURL::.*"],
    "zlib": [r"ZLIB::.*"],
    "grpc++": [r"PkgConfig::GRPCPP"],
    "protobuf": [r"PkgConfig::PROTOBUF"],
    "nlohmann-json": [r"nlohmann_json::.*"],
    "abseil": [r"absl::.*"],
    "openssl": [r"OpenSSL::.*"],
    "yaml-cpp": [r"yaml-cpp"],
    "cli11": [r"CLI11::.*"],
    "cpp-httplib": [r"PkgConfig::HTTPLIB"],
    "google benchmark": [r"benchmark::.*"],
    "googletest": [r"GTest::.*"],
}
ALWAYS = [r"Threads::Threads"]
TEST_EXTRAS = ["googletest", "nlohmann-json", "cpp-httplib", "`proto/`"]
KEYWORDS = {"PUBLIC", "PRIVATE", "INTERFACE", "debug", "optimized", "general"}


def fail(msg):
    print("check-layering: " + msg, file=sys.stderr)
    sys.exit(2)


def read_table(root):
    text = open(os.path.join(root, "README.md"), encoding="utf-8").read()
    rows = {}
    in_table = False
    for line in text.splitlines():
        if line.startswith("| directory | what it is | may use |"):
            in_table = True
            continue
        if in_table:
            if not line.startswith("|"):
                break
            cells = [c.strip() for c in line.strip().strip("|").split("|")]
            if len(cells) != 3 or set(cells[0]) <= set("-"):
                continue
            m = re.fullmatch(r"`([^`]+)`", cells[0])
            if not m:
                fail("table row without a `directory`: " + line)
            rows[m.group(1).rstrip("/")] = cells[2]
    if not rows:
        fail("no layering table in README.md")
    return rows


def parse_cell(cell, rows, row_dir):
    """-> (allowed row dirs, allowed external patterns, any external?)"""
    dirs = {row_dir}
    patterns = list(ALWAYS)
    any_external = "client library" in cell
    cell = re.sub(r"\s+[—-]\s+never.*$", "", cell)  # "— never the proxy"
    for item in re.split(r",|\band\b", cell):
        item = item.strip().lower()
        if not item or "client library" in item or "standard library" in item:
            continue
        for d in re.findall(r"`([^`]+)`", item):
            d = d.rstrip("/")
            if d not in rows:
                fail("row %s names %s, which is not a row" % (row_dir, d))
            dirs.add(d)
        if "`" in item:
            continue
        if item not in EXTERNAL:
            fail("row %s: unknown library %r (add it to EXTERNAL)" % (row_dir, item))
        patterns += EXTERNAL[item]
    return dirs, patterns, any_external


def row_of(path_dir, rows):
    best = None
    for d in rows:
        pattern = re.escape(d).replace(re.escape("<name>"), "[^/]+")
        if re.match(pattern + r"(/|$)", path_dir) and (best is None or len(d) > len(best)):
            best = d
    return best


def cmake_commands(root):
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = [d for d in dirnames
                       if not d.startswith(".") and not d.startswith("build")
                       and d != "node_modules"]
        for f in filenames:
            if f == "CMakeLists.txt" or f.endswith(".cmake"):
                path = os.path.join(dirpath, f)
                text = open(path, encoding="utf-8").read()
                text = re.sub(r"#[^\n]*", "", text)
                rel = os.path.relpath(dirpath, root).replace(os.sep, "/")
                for m in re.finditer(
                        r"\b(add_library|add_executable|target_link_libraries)\s*\(([^)]*)\)",
                        text):
                    yield rel, os.path.relpath(path, root), m.group(1), m.group(2).split()


def is_test(target):
    """Tests, their helpers, and benchmark programs (which drive real
    plugins through the test helpers)."""
    return target.endswith("_test") or target.endswith("_testing") or \
        target.startswith("prism_test_") or target.startswith("prism_bench_")


def main():
    root = os.path.abspath(sys.argv[1] if len(sys.argv) > 1 else
                           os.path.join(os.path.dirname(__file__), ".."))
    rows = read_table(root)
    rules = {d: parse_cell(cell, rows, d) for d, cell in rows.items()}
    test_rules = {}
    for d, cell in rows.items():
        test_rules[d] = parse_cell(cell + ", " + ", ".join(TEST_EXTRAS), rows, d)

    commands = list(cmake_commands(root))
    owner = {}  # target -> row dir
    unowned = []
    for rel, path, cmd, args in commands:
        if cmd in ("add_library", "add_executable") and args:
            r = row_of(rel, rows)
            if r is not None:
                owner[args[0]] = r
            else:
                unowned.append("%s: %s is in no row of the table (add its directory)" %
                               (path, args[0]))

    problems = []
    checked = 0
    for rel, path, cmd, args in commands:
        if cmd != "target_link_libraries" or not args or args[0] not in owner:
            continue  # e.g. a function's ${target}; top-level helpers
        target = args[0]
        row = owner[target]
        # A function's ${name} target in tests/ is a test program (its name
        # is a parameter this script cannot resolve).
        test_target = is_test(target) or (target.startswith("${") and row == "tests")
        dirs, patterns, any_external = (test_rules if test_target else rules)[row]
        for lib in args[1:]:
            if lib in KEYWORDS or lib.startswith("$") or lib.startswith("-"):
                continue
            checked += 1
            if lib in owner:
                ok = owner[lib] in dirs and (test_target or not is_test(lib))
            else:
                ok = any_external or any(re.fullmatch(p, lib) for p in patterns)
            if not ok:
                where = "`%s/`" % owner[lib] if lib in owner else "an external library"
                problems.append("%s: %s (row `%s/`) links %s, %s, outside its row" %
                                (path, target, row, lib, where))
    problems += unowned
    for p in problems:
        print("check-layering: " + p)
    if problems:
        print("check-layering: %d link(s) outside README.md's layering table" % len(problems))
        return 1
    print("check-layering: %d links of %d targets match README.md's table" %
          (checked, len(owner)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
