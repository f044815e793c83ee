#!/usr/bin/python3
"""Conformance tests for Iridium, written from the reference specification
(../shared/iridium-spec.md, sections 1-4) without looking at the implementation.

Usage: run_conformance.py IRIDIUM_BINARY [NAME_SUBSTRING...]

Two kinds of cases:

* programs/NAME.iasm with programs/NAME.expect.json -- the expected outcome,
  derived by hand from the spec. Keys (all optional):
    exit             expected exit code (0 ok, 1 runtime error, 2 assembly/image error)
    exit_any         list of acceptable exit codes (only "no crash" is asserted)
    status           "halted" / "ended" / "error"
    registers        {"N": int}   integer registers to check
    float_registers  {"N": float | "inf" | "-inf" | "nan"}
    equal_flag       bool
    remainder        int
    stdout           exact program output (bytes decoded as UTF-8)
    error_any        the state's error message must contain one of these
                     (case-insensitive)
    error_offset     the error message must name this code offset (decimal or hex)
    args             extra command-line arguments (e.g. --max-steps 1000)
    run              false: only assemble (and check bytes), do not run
    code_hex         expected code section of the assembled image
    rodata_hex       expected read-only section of the assembled image
    error_lines      (exit 2) stderr must hold FILE:LINE:COL: error: for each line
    stderr_any       (exit 2) stderr must contain one of these (case-insensitive)
  Every program that assembles is also: assembled to a .pie, checked for a
  well-formed header, run from the .pie with the same expectations, and
  disassembled and re-assembled, which must give the same bytes (spec 4).

* hand-built images (IMAGE_CASES below): byte strings written to NAME.pie and
  run; malformed ones must be rejected with exit 2 and a clear message.
"""

import concurrent.futures
import json
import math
import os
import re
import struct
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
PROGRAMS = os.path.join(HERE, "programs")
TIMEOUT = 120
INT_MIN, INT_MAX = -(2**31), 2**31 - 1


# --------------------------------------------------------------------------- helpers

def run_cmd(argv):
    try:
        p = subprocess.run(argv, capture_output=True, timeout=TIMEOUT)
        return p.returncode, p.stdout, p.stderr
    except subprocess.TimeoutExpired as e:
        return "timeout", e.stdout or b"", e.stderr or b""


def crashed(rc, stderr):
    if rc == "timeout":
        return "timed out after %ds" % TIMEOUT
    if isinstance(rc, int) and rc < 0:
        return "killed by signal %d" % -rc
    if rc not in (0, 1, 2):
        return "unexpected exit code %r" % rc
    text = stderr.decode("utf-8", "replace")
    for marker in ("AddressSanitizer", "LeakSanitizer", "terminate called"):
        if marker in text:
            return "sanitizer/abort output: %s" % marker
    # UBSan reports "file.cpp:LINE:COL: runtime error: ..." (the VM's own
    # messages also start with "runtime error:", but without a source location)
    if re.search(r"\.(?:cpp|cc|h|hpp):\d+:\d+: runtime error:", text):
        return "UndefinedBehaviorSanitizer report"
    return None


def tail(b, n=400):
    s = b.decode("utf-8", "replace") if isinstance(b, bytes) else str(b)
    s = s.strip()
    return s if len(s) <= n else "..." + s[-n:]


def float_matches(want, got):
    if isinstance(want, str):
        want = float(want)
    if not isinstance(got, (int, float)) or isinstance(got, bool):
        return False
    got = float(got)
    if math.isnan(want):
        return math.isnan(got)
    return got == want


def offset_named(msg, off):
    """Does the message name code offset `off` (decimal, or hex like 0x0c)?"""
    pats = [r"(?<![0-9A-Za-z])%d(?![0-9])" % off,
            r"0x0*%x(?![0-9a-fA-F])" % off]
    return any(re.search(p, msg, re.IGNORECASE) for p in pats)


def parse_image(data):
    """Split a .pie image per spec 2. Returns (rodata, code) or raises ValueError."""
    if len(data) < 68:
        raise ValueError("image shorter than 68 bytes")
    if data[0:4] != b"EPIE":
        raise ValueError("bad magic %r" % data[0:4])
    if any(data[4:64]):
        raise ValueError("reserved bytes 4..63 not zero")
    (r,) = struct.unpack_from("<I", data, 64)
    if 68 + r > len(data):
        raise ValueError("read-only length %d past the end" % r)
    code = data[68 + r:]
    if len(code) % 4:
        raise ValueError("code length %d not a multiple of 4" % len(code))
    return data[68:68 + r], code


def hexnorm(s):
    return re.sub(r"\s+", "", s).lower()


# --------------------------------------------------------------------------- state checks

def check_run(exp, rc, out, err, state_path, problems, where=""):
    c = crashed(rc, err)
    if c:
        problems.append("%s%s; stderr: %s" % (where, c, tail(err)))
        return
    if "exit_any" in exp:
        if rc not in exp["exit_any"]:
            problems.append("%sexit %r not in %r; stderr: %s" % (where, rc, exp["exit_any"], tail(err)))
        return
    want_exit = exp.get("exit", 0)
    if rc != want_exit:
        problems.append("%sexit code %r, expected %r; stderr: %s" % (where, rc, want_exit, tail(err)))
    if "stdout" in exp:
        got = out.decode("utf-8", "replace")
        if got != exp["stdout"]:
            problems.append("%sstdout %r, expected %r" % (where, got, exp["stdout"]))
    if want_exit == 2:
        return
    try:
        with open(state_path, "rb") as f:
            state = json.loads(f.read().decode("utf-8").strip().splitlines()[-1])
    except Exception as e:  # noqa: BLE001 - any failure to read the state is a failure
        problems.append("%sno readable state JSON (%s)" % (where, e))
        return
    if "status" in exp and state.get("status") != exp["status"]:
        problems.append("%sstatus %r, expected %r (error: %r)" % (
            where, state.get("status"), exp["status"], state.get("error")))
    regs = state.get("registers") or []
    for k, v in exp.get("registers", {}).items():
        i = int(k)
        got = regs[i] if i < len(regs) else None
        if got != v:
            problems.append("%s$%d = %r, expected %r" % (where, i, got, v))
    fregs = state.get("float_registers") or []
    for k, v in exp.get("float_registers", {}).items():
        i = int(k)
        got = fregs[i] if i < len(fregs) else None
        if not float_matches(v, got):
            problems.append("%sfloat $%d = %r, expected %r" % (where, i, got, v))
    if "equal_flag" in exp and state.get("equal_flag") != exp["equal_flag"]:
        problems.append("%sequal_flag %r, expected %r" % (where, state.get("equal_flag"), exp["equal_flag"]))
    if "remainder" in exp and state.get("remainder") != exp["remainder"]:
        problems.append("%sremainder %r, expected %r" % (where, state.get("remainder"), exp["remainder"]))
    msg = state.get("error") or ""
    if exp.get("status") == "error" and not msg:
        problems.append("%sstatus error but no error message" % where)
    if exp.get("status") in ("halted", "ended") and msg:
        problems.append("%sunexpected error message %r" % (where, msg))
    if "error_any" in exp and not any(w.lower() in msg.lower() for w in exp["error_any"]):
        problems.append("%serror %r names none of %r" % (where, msg, exp["error_any"]))
    if "error_offset" in exp and not offset_named(msg, exp["error_offset"]):
        problems.append("%serror %r does not name code offset %d" % (where, msg, exp["error_offset"]))


def check_asm_error(exp, path, rc, out, err, problems):
    c = crashed(rc, err)
    if c:
        problems.append("%s; stderr: %s" % (c, tail(err)))
        return
    if rc != 2:
        problems.append("exit code %r, expected 2; stderr: %s" % (rc, tail(err)))
    text = err.decode("utf-8", "replace")
    if not text.strip():
        problems.append("no message on stderr")
    base = re.escape(os.path.basename(path))
    for line in exp.get("error_lines", []):
        if not re.search(r"%s:%d:\d+: error: \S" % (base, line), text):
            problems.append("no '%s:%d:COL: error: ...' in stderr: %s" % (
                os.path.basename(path), line, tail(err, 800)))
    if path.endswith(".iasm"):
        # every FILE:LINE:COL must point into the source (1-based, COL at most
        # one past the end of the line)
        with open(path, encoding="utf-8") as f:
            src_lines = f.read().split("\n")
        for m in re.finditer(r"%s:(\d+):(\d+): error:" % base, text):
            ln, col = int(m.group(1)), int(m.group(2))
            if not (1 <= ln <= len(src_lines) and 1 <= col <= len(src_lines[ln - 1]) + 1):
                problems.append("error position %d:%d is not in the source" % (ln, col))
    if "stderr_any" in exp and not any(w.lower() in text.lower() for w in exp["stderr_any"]):
        problems.append("stderr names none of %r: %s" % (exp["stderr_any"], tail(err)))


# --------------------------------------------------------------------------- program cases

def program_case(binary, name, tmp):
    src = os.path.join(PROGRAMS, name + ".iasm")
    with open(os.path.join(PROGRAMS, name + ".expect.json")) as f:
        exp = json.load(f)
    problems = []
    args = exp.get("args", [])
    state = os.path.join(tmp, name + ".state.json")

    if exp.get("exit") == 2:
        rc, out, err = run_cmd([binary, "run", src, "--state-json", state] + args)
        check_asm_error(exp, src, rc, out, err, problems)
        pie = os.path.join(tmp, name + ".pie")
        rc, out, err = run_cmd([binary, "asm", src, "-o", pie])
        c = crashed(rc, err)
        if c:
            problems.append("asm: %s" % c)
        elif rc != 2:
            problems.append("asm: exit code %r, expected 2" % rc)
        return problems

    if exp.get("run", True):
        rc, out, err = run_cmd([binary, "run", src, "--state-json", state] + args)
        check_run(exp, rc, out, err, state, problems)

    # assemble, check the image bytes, run the image, round-trip the disassembly
    pie = os.path.join(tmp, name + ".pie")
    rc, out, err = run_cmd([binary, "asm", src, "-o", pie])
    if rc != 0 or not os.path.exists(pie):
        problems.append("asm: exit %r; stderr: %s" % (rc, tail(err)))
        return problems
    with open(pie, "rb") as f:
        img = f.read()
    try:
        rodata, code = parse_image(img)
    except ValueError as e:
        problems.append("image: %s" % e)
        return problems
    if "code_hex" in exp and code.hex() != hexnorm(exp["code_hex"]):
        problems.append("code bytes %s, expected %s" % (code.hex(), hexnorm(exp["code_hex"])))
    if "rodata_hex" in exp and rodata.hex() != hexnorm(exp["rodata_hex"]):
        problems.append("read-only bytes %s, expected %s" % (rodata.hex(), hexnorm(exp["rodata_hex"])))
    if exp.get("run", True):
        state2 = os.path.join(tmp, name + ".pie.state.json")
        rc, out, err = run_cmd([binary, "run", pie, "--state-json", state2] + args)
        check_run(exp, rc, out, err, state2, problems, where="[from .pie] ")
    problems += roundtrip(binary, pie, img, tmp, name)
    return problems


def roundtrip(binary, pie, img, tmp, name):
    problems = []
    rc, out, err = run_cmd([binary, "disasm", pie])
    if rc != 0:
        return ["disasm: exit %r; stderr: %s" % (rc, tail(err))]
    dis = os.path.join(tmp, name + ".disasm.iasm")
    with open(dis, "wb") as f:
        f.write(out)
    pie2 = os.path.join(tmp, name + ".re.pie")
    rc, _, err = run_cmd([binary, "asm", dis, "-o", pie2])
    if rc != 0:
        return ["disassembly does not re-assemble (exit %r): %s" % (rc, tail(err))]
    with open(pie2, "rb") as f:
        img2 = f.read()
    if img2 != img:
        problems.append("disassemble + re-assemble changed the image:\n  was %s\n  now %s" % (
            img.hex(), img2.hex()))
    return problems


# --------------------------------------------------------------------------- image cases

def ins(op, a=0, b=0, c=0):
    return bytes([op, a, b, c])


def image(code=b"", rodata=b"", magic=b"EPIE", reserved=None, r=None):
    reserved = bytes(60) if reserved is None else reserved
    length = len(rodata) if r is None else r
    return magic + reserved + struct.pack("<I", length) + rodata + code


MAGIC = ["magic"]
SIZE = ["short", "truncat", "header", "small", "size", "length", "too few", "end of"]
RODATA = ["read-only", "rodata", "length", "size", "truncat", "section", "end of"]
WHOLE = ["multiple", "whole", "partial", "truncat", "instruction", "size", "length"]
OPCODE = ["opcode"]
REG = ["register"]
SHIFT = ["shift"]
PAD = ["padding", "zero", "unused", "operand", "reserved"]
TARGET = ["target", "jump", "address"]
PRTS = ["offset", "read-only", "rodata", "string"]


def bad(name, data, words, note):
    return dict(name=name, data=data, exp={"exit": 2, "stderr_any": words}, note=note)


def good(name, data, roundtrip=True, **exp):
    return dict(name=name, data=data, exp=exp, roundtrip=roundtrip)


IMAGE_CASES = [
    # valid, hand-built images: the loader and interpreter, independent of the assembler
    good("img_halt", image(ins(5)), exit=0, status="halted"),
    good("img_no_code", image(b""), exit=0, status="ended"),
    good("img_rodata_no_code", image(b"", rodata=b"hi\0"), exit=0, status="ended"),
    good("img_load_lui", image(ins(0, 0, 0x00, 0x01) + ins(39, 0, 0x86, 0xA0) + ins(5)),
         exit=0, status="halted", registers={"0": 100000}),
    good("img_load_big_endian", image(ins(0, 7, 0x12, 0x34) + ins(0, 8, 0x80, 0x01)),
         exit=0, status="ended", registers={"7": 0x1234, "8": -32767}),
    good("img_loadf64_negative", image(ins(22, 3, 0xFF, 0xFE)), exit=0, status="ended",
         float_registers={"3": -2.0}),
    good("img_register_31", image(ins(0, 31, 0, 5) + ins(18, 31)), exit=0, status="ended",
         registers={"31": 6}),
    good("img_shift_31", image(ins(0, 0, 0, 1) + ins(33, 0, 31, 0)), exit=0, status="ended",
         registers={"0": INT_MIN}),
    good("img_djmpe_to_code_end", image(ins(9, 0, 0) + ins(20, 0, 12, 0) + ins(0, 1, 0, 1)),
         exit=0, status="ended", registers={"1": 0}),
    good("img_call_to_code_end", image(ins(46, 0, 8, 0) + ins(0, 1, 0, 1)),
         exit=0, status="ended", registers={"1": 0}),
    good("img_loop_to_code_end", image(ins(40, 0, 1, 0) + ins(41, 0, 12, 0) + ins(18, 1)),
         exit=0, status="ended", registers={"1": 0}),
    good("img_prts", image(ins(21, 0, 0, 0), rodata=b"ok\n\0"), exit=0, status="ended",
         stdout="ok\n"),
    good("img_prts_last_byte", image(ins(21, 0, 2, 0) + ins(21, 0, 0, 0), rodata=b"ab\0"),
         exit=0, status="ended", stdout="ab"),
    good("img_igl", image(ins(0, 1, 0, 9) + ins(100)), exit=1, status="error",
         registers={"1": 9}, error_offset=4),
    good("img_prts_without_nul", image(ins(21, 0, 0, 0), rodata=b"AB"),
         exit=1, status="error", error_any=["nul", "terminat", "string"], error_offset=0),

    # malformed images: rejected before anything runs
    # `iridium run` tells an image from assembly source by the magic, so an empty
    # file runs as an empty (source) program; `disasm` must still reject it.
    dict(bad("bad_empty_file", b"", SIZE + MAGIC, "empty file"), disasm_only=True),
    bad("bad_magic_only", b"EPIE", SIZE, "4 bytes"),
    bad("bad_header_67_bytes", b"EPIE" + bytes(63), SIZE, "header cut before the length"),
    bad("bad_magic", image(ins(5), magic=b"EPIF"), MAGIC, "wrong magic"),
    # spec 2 says the reserved bytes are "written as zero"; whether a reader must
    # reject nonzero ones is not spelled out. This implementation rejects them
    # (consistent with the verifier's "zero padding"), and so does this test.
    bad("bad_reserved_nonzero", image(ins(5), reserved=bytes(10) + b"\x01" + bytes(49)),
        ["reserved", "zero", "header"], "reserved byte 14 = 1"),
    bad("bad_magic_elf", image(ins(5), magic=b"\x7fELF"), MAGIC, "an ELF header"),
    bad("bad_rodata_length_past_end", image(ins(5), rodata=b"abc", r=100), RODATA,
        "R larger than the file"),
    bad("bad_rodata_length_huge", image(ins(5), rodata=b"abc", r=0xFFFFFFFF), RODATA,
        "R = 2^32-1"),
    bad("bad_code_partial_instruction", image(ins(5) + b"\x00"), WHOLE, "5 bytes of code"),
    bad("bad_code_two_bytes", image(b"\x05\x00"), WHOLE, "2 bytes of code"),
    bad("bad_opcode_48", image(ins(48)), OPCODE, "opcode 48 (first unused)"),
    bad("bad_opcode_99", image(ins(5) + ins(99)), OPCODE, "opcode 99"),
    bad("bad_opcode_101", image(ins(101)), OPCODE, "opcode 101"),
    bad("bad_opcode_255", image(ins(255)), OPCODE, "opcode 255"),
    bad("bad_register_add_c", image(ins(1, 0, 0, 32)), REG, "ADD c = 32"),
    bad("bad_register_load", image(ins(0, 255, 0, 0)), REG, "LOAD a = 255"),
    bad("bad_register_jmp", image(ins(6, 32)), REG, "JMP a = 32"),
    bad("bad_register_loadm_b", image(ins(42, 0, 32, 0)), REG, "LOADM b = 32"),
    bad("bad_register_eqf64", image(ins(27, 40, 0, 0)), REG, "EQF64 a = 40"),
    bad("bad_shift_32", image(ins(33, 0, 32, 0)), SHIFT, "SHL by 32"),
    bad("bad_shift_255", image(ins(34, 0, 255, 0)), SHIFT, "SHR by 255"),
    bad("bad_padding_hlt", image(ins(5, 0, 0, 1)), PAD, "HLT with a nonzero operand byte"),
    bad("bad_padding_nop", image(ins(16, 1, 0, 0)), PAD, "NOP with a nonzero operand byte"),
    bad("bad_padding_inc", image(ins(18, 0, 1, 0)), PAD, "INC with nonzero byte 2"),
    bad("bad_padding_eq", image(ins(9, 0, 1, 5)), PAD, "EQ with nonzero byte 3"),
    bad("bad_padding_shl", image(ins(33, 0, 5, 1)), PAD, "SHL with nonzero byte 3"),
    bad("bad_padding_djmpe", image(ins(20, 0, 0, 1)), PAD, "DJMPE with nonzero byte 3"),
    bad("bad_padding_ret", image(ins(47, 0, 1, 0)), PAD, "RET with a nonzero operand byte"),
    bad("bad_djmpe_past_end", image(ins(20, 0, 16, 0) + ins(5)), TARGET, "DJMPE 16, code 8"),
    bad("bad_djmpe_misaligned", image(ins(20, 0, 2, 0) + ins(5)), TARGET, "DJMPE 2"),
    bad("bad_call_past_end", image(ins(46, 0, 12, 0) + ins(5)), TARGET, "CALL 12, code 8"),
    bad("bad_call_misaligned", image(ins(46, 0, 5, 0) + ins(5)), TARGET, "CALL 5"),
    bad("bad_loop_past_end", image(ins(41, 0xFF, 0xFC, 0) + ins(5)), TARGET, "LOOP 0xFFFC"),
    bad("bad_prts_offset_is_length", image(ins(21, 0, 2, 0), rodata=b"a\0"), PRTS,
        "PRTS at R"),
    bad("bad_prts_no_rodata", image(ins(21, 0, 0, 0)), PRTS, "PRTS with R = 0"),
    bad("bad_prts_offset_far", image(ins(21, 0xFF, 0xFF, 0), rodata=b"a\0"), PRTS,
        "PRTS at 0xFFFF"),
]


def image_case(binary, case, tmp):
    name, exp = case["name"], case["exp"]
    path = os.path.join(tmp, name + ".pie")
    with open(path, "wb") as f:
        f.write(case["data"])
    state = os.path.join(tmp, name + ".state.json")
    problems = []
    rc, out, err = run_cmd([binary, "run", path, "--state-json", state])
    if exp.get("exit") == 2:
        if not case.get("disasm_only"):
            check_asm_error(exp, path, rc, out, err, problems)
        rc, out, err = run_cmd([binary, "disasm", path])
        if case.get("disasm_only"):
            check_asm_error(exp, path, rc, out, err, problems)
        c = crashed(rc, err)
        if c:
            problems.append("disasm: %s" % c)
        elif rc != 2:
            problems.append("disasm: exit code %r, expected 2" % rc)
        return problems
    check_run(exp, rc, out, err, state, problems)
    if case.get("roundtrip"):
        problems += roundtrip(binary, path, case["data"], tmp, name)
    return problems


# --------------------------------------------------------------------------- main

def main():
    if len(sys.argv) < 2:
        print(__doc__)
        return 2
    binary = os.path.abspath(sys.argv[1])
    filters = sys.argv[2:]
    names = sorted(f[:-5] for f in os.listdir(PROGRAMS) if f.endswith(".iasm"))
    for n in names:
        if not os.path.exists(os.path.join(PROGRAMS, n + ".expect.json")):
            print("FAIL %s: no %s.expect.json" % (n, n))
            return 1
    jobs = [("prog", n) for n in names] + [("img", c) for c in IMAGE_CASES]
    if filters:
        jobs = [j for j in jobs if any(f in (j[1] if j[0] == "prog" else j[1]["name"])
                                       for f in filters)]
    failed = 0
    with tempfile.TemporaryDirectory(prefix="iridium-conf-") as tmp:
        def work(job):
            kind, what = job
            try:
                if kind == "prog":
                    return what, program_case(binary, what, tmp)
                return what["name"], image_case(binary, what, tmp)
            except Exception as e:  # noqa: BLE001 - a broken case is a failed case
                return (what if kind == "prog" else what["name"]), ["runner exception: %r" % e]

        workers = max(2, os.cpu_count() or 2)
        with concurrent.futures.ThreadPoolExecutor(workers) as pool:
            for name, problems in pool.map(work, jobs):
                if problems:
                    failed += 1
                    print("FAIL %s" % name)
                    for p in problems:
                        print("     - %s" % p)
                else:
                    print("PASS %s" % name)
    print("\n%d of %d conformance cases passed" % (len(jobs) - failed, len(jobs)))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
