#!/usr/bin/python3
"""Check the backticked names of Markdown docs against the repository.

Run at the repository root: scripts/check-doc-names.py README.md docs/*.md
Kinds of token and how each is checked:
  --flag          defined by a flag set in *.go ("name" in fs.X/Flags().X calls)
  TestX, FuzzX    a func of that name in *.go
  a/b.go, dir/    exists (relative to the root or the doc), or a tracked file ends with it
  module/path     a module in go.mod, or imported by a .go file
  pkg.Name        Name declared in the project package pkg (a directory of that name)
  Type.Member     a method or field of that project type
  Name, name()    declared in *.go (func, type, var/const, field)
  ETCDSHIM_X      the environment variable of a flag
  snake_case      a metric or key: in a tracked file other than Markdown, or on a
                  running shim's /metrics and /metrics/shim (DOCCHECK_SHIM=URL)
Names not found in the project are then looked up in the module cache of the
direct dependencies (etcd, raft, grpc, ...) and reported as "external" when found there.
Prints one line per token not found in the project (DOCCHECK=-v: the external
ones too). Tokens with spaces (commands) are only checked for flags.
"""
import glob, os, re, subprocess, sys, urllib.request

def git_grep(pattern, paths=("*.go",), fixed=False, word=False, extended=True):
    args = ["git", "grep", "-q", "-I"] + (["-w"] if word else []) + (["-F"] if fixed else ["-E"] if extended else [])
    return subprocess.run(args + ["-e", pattern, "--"] + list(paths)).returncode == 0

def sh(*args):
    return subprocess.run(args, capture_output=True, text=True).stdout

gomod = open("go.mod").read()
modcache = sh("go", "env", "GOMODCACHE").strip()
direct = re.findall(r"^\t(\S+) (v\S+)$", gomod.split("require (")[1].split(")")[0], re.M)
extdirs = [os.path.join(modcache, m + "@" + v) for m, v in direct] + glob.glob(modcache + "/go.etcd.io/raft/v3@*")
imports = set(re.findall(r'"([\w.-]+\.[a-z]+/[^"]+)"', sh("git", "grep", "-h", "-E", r'^\s*(\w+ )?"[a-z0-9.-]+\.[a-z]+/', "--", "*.go")))
pkgdirs = {}
for f in sh("git", "ls-files", "*.go").split():
    pkgdirs.setdefault(os.path.basename(os.path.dirname(f)), set()).add(os.path.dirname(f))
flagdefs = sh("git", "grep", "-h", "-o", "-E", r'(Var|P|Slice|ToString|Duration|Bool|String|Int|Int64)\((&[^,]+, )?"[a-z0-9-]+"', "--", "*.go")
flags = set(re.findall(r'"([a-z0-9-]+)"', flagdefs))
metrics = ""  # with DOCCHECK_SHIM=http://127.0.0.1:2379, metric names are also looked for on a running shim
for u in [os.environ["DOCCHECK_SHIM"] + p for p in ("/metrics", "/metrics/shim") if os.environ.get("DOCCHECK_SHIM")]:
    try: metrics += urllib.request.urlopen(u, timeout=5).read().decode()
    except Exception: pass

def is_module(t):
    """A Go module or package path: a domain first (sigs.k8s.io/yaml), or the
    tail of a required module or an import (spf13/pflag, client/v3)."""
    if os.path.exists(t.rstrip("/")) or "/" not in t and not re.match(r"^[a-z0-9-]+\.(io|org|com|net|in)$", t):
        return False
    if re.match(r"^[a-z0-9-]+(\.[a-z0-9-]+)*\.(io|org|com|net|in)(/|$)", t):
        return True
    mods = [m for m, _ in direct] + list(imports)
    return any(m.endswith("/" + t) or ("/" + t + "/") in m for m in mods)

def decl(name, paths=("*.go",)):
    n = re.escape(name)
    return git_grep(r"(func (\([^)]*\) )?%s[[(]|type %s\b|\b%s\s*(=|:=)|^\s*%s\s+[][*a-zA-Z.]|^\s*%s$|\b%s,)" % ((n,) * 6), paths)

def external(name):
    leaf = name.split(".")[-1]
    for d in extdirs:
        if os.path.isdir(d) and subprocess.run(["grep", "-rqw", "--include=*.go", "--include=*.md", leaf, d]).returncode == 0:
            return os.path.relpath(d, modcache)
    return None

def external_flag(f):
    for d in extdirs:
        if os.path.isdir(d) and subprocess.run(["grep", "-rqF", "--include=*.go", '"' + f + '"', d]).returncode == 0:
            return os.path.relpath(d, modcache)
    return None

tick = re.compile(r"`([^`\n]+)`")
flagre = re.compile(r"(?<![\w-])--([a-z0-9][a-z0-9-]*[a-z0-9])")
found, missing, ext = 0, [], []
for md in sys.argv[1:]:
    base = os.path.dirname(md)
    for lineno, line in enumerate(open(md, encoding="utf-8"), 1):
        for tok in tick.findall(line):
            t = tok.strip()
            res = []  # (kind, token, ok)
            for f in flagre.findall(t):
                res.append(("flag", "--" + f, f in flags))
            if not (t.startswith("-") or " " in t or "://" in t or t.startswith("/")):
                t2 = t[:-2] if t.endswith("()") else t
                if re.match(r"^([\w/]+/)?(Test|Fuzz|Benchmark)[A-Z0-9_]\w*$", t2):  # TestX, e2e/TestX
                    d, _, name = t2.rpartition("/")
                    res.append(("test", t2, git_grep(r"func %s\(" % name, ((d + "/*.go") if d else "*.go",))))
                elif is_module(t2):
                    mod = t2
                    ok = (mod in gomod or any(i == mod or i.startswith(mod + "/") for i in imports)
                          or any(m.endswith(mod) for m, _ in direct) or any(i.endswith(mod) for i in imports))
                    res.append(("module", t2, ok))
                elif re.match(r"^[\w.-]+(/[\w.…-]+)*/[\w.…-]*$|^[\w-]+\.(go|md|yaml|json|sh|conf|service)$", t2) and not re.match(r"^[\w/]+\.[A-Z]\w*$", t2):
                    p = t2.replace("…", "").rstrip("/")
                    ok = os.path.exists(p) or os.path.exists(os.path.join(base, p)) or bool(sh("git", "ls-files", "*/" + p, p))
                    res.append(("path", t2, ok))
                elif re.match(r"^[\w/]+\.[A-Z]\w*(\.\w+)?$", t2) and "/" in t2:  # internal/etcdtest.Mem
                    d, name = t2.split(".", 1)
                    res.append(("identifier", t2, os.path.isdir(d) and decl(name.split(".")[0], (d + "/*.go",))))
                elif re.match(r"^[A-Za-z_]\w*(\.[A-Za-z_]\w*)+$", t2):
                    a, b = t2.split(".")[0], t2.split(".")[1]
                    if a in pkgdirs:
                        ok = any(decl(b, (d + "/*.go",)) for d in pkgdirs[a])
                    else:
                        ok = git_grep(r"type %s\b" % a) and (git_grep(r"func \(\w+ \*?%s(\[[^]]*\])?\) %s\(" % (a, b)) or decl(b))
                    res.append(("identifier", t2, ok))
                elif re.match(r"^ETCDSHIM_[A-Z0-9_]+$", t2):
                    res.append(("env", t2, t2[9:].lower().replace("_", "-") in flags))
                elif re.match(r"^[a-z][a-z0-9]*(_[a-z0-9]+)+$", t2):
                    res.append(("metric/key", t2, git_grep(t2, ("*", ":!*.md"), fixed=True) or re.search(r"^%s(\{| )" % t2, metrics, re.M) is not None))
                elif re.match(r"^[A-Za-z_]\w*$", t2) and (re.search(r"[A-Z]", t2[1:]) or t2[0].isupper() or t2.endswith("()") or t != t2):
                    res.append(("identifier", t2, decl(t2) or (t2 in pkgdirs)))
                elif re.match(r"^[a-z][a-z0-9]*$", t2) and t2 in pkgdirs:
                    res.append(("package", t2, True))
            for kind, name, ok in res:
                if ok:
                    found += 1
                    continue
                e = external(name.lstrip("-")) if kind in ("identifier", "metric/key") else None
                if kind == "flag":
                    e = external_flag(name[2:])
                (ext if e else missing).append("%s:%d: %s %s%s" % (md, lineno, kind, name, " (in " + e + ")" if e else ""))
print("\n".join(missing))
if "-v" in os.environ.get("DOCCHECK", ""):
    print("\n".join(ext))
print("%d found in the project, %d external, %d not found" % (found, len(ext), len(missing)), file=sys.stderr)
