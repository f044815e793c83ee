"""`cmake --install BUILD --prefix DIR` gives a working iridium: the binary in
DIR/bin, the examples in DIR/share/iridium/examples, the docs in
DIR/share/doc/iridium (README.md's install steps use the default prefix,
/usr/local).

Run as: test_install.py CMAKE BUILD_DIR SOURCE_DIR
"""
import os
import subprocess
import sys
import tempfile
import unittest

if len(sys.argv) < 4:
    sys.exit(f"usage: {sys.argv[0]} CMAKE BUILD_DIR SOURCE_DIR [unittest args]")
CMAKE, BUILD, SOURCE = (os.path.abspath(a) if os.sep in a else a for a in sys.argv[1:4])
del sys.argv[1:4]


class Install(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.TemporaryDirectory()
        cls.prefix = os.path.join(cls.tmp.name, "prefix")
        cls.result = subprocess.run([CMAKE, "--install", BUILD, "--prefix", cls.prefix],
                                    capture_output=True, text=True, timeout=120)

    @classmethod
    def tearDownClass(cls):
        cls.tmp.cleanup()

    def setUp(self):
        self.assertEqual(self.result.returncode, 0, self.result.stdout + self.result.stderr)

    def installed(self, *parts):
        return os.path.join(self.prefix, *parts)

    def run_installed(self, *args):
        # From an unrelated directory, with only the prefix's bin on PATH:
        # nothing may come from the source or build tree.
        env = {k: v for k, v in os.environ.items() if not k.startswith("IRIDIUM_")}
        env["PATH"] = self.installed("bin") + os.pathsep + "/usr/bin:/bin"
        return subprocess.run(["iridium", *args], capture_output=True, text=True, timeout=60,
                              cwd=self.tmp.name, env=env)

    def test_binary_runs(self):
        self.assertTrue(os.access(self.installed("bin", "iridium"), os.X_OK))
        r = self.run_installed("--version")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertRegex(r.stdout, r"^iridium \d+\.\d+\.\d+\n$")

    def test_every_example_is_installed_and_runs(self):
        examples = self.installed("share", "iridium", "examples")
        wanted = sorted(f for f in os.listdir(os.path.join(SOURCE, "examples")) if f.endswith(".iasm"))
        self.assertTrue(wanted)
        self.assertEqual(sorted(os.listdir(examples)), wanted)
        r = self.run_installed("run", os.path.join(examples, "hello.iasm"))
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(r.stdout, "Hello, Iridium!\n")
        for name in wanted:
            r = self.run_installed("run", os.path.join(examples, name), "--max-steps", "100000000")
            self.assertEqual(r.returncode, 0, f"{name}: {r.stderr}")

    def test_docs_are_installed(self):
        docs = self.installed("share", "doc", "iridium")
        self.assertTrue(os.path.isfile(os.path.join(docs, "README.md")))
        for name in os.listdir(os.path.join(SOURCE, "docs")):
            self.assertTrue(os.path.isfile(os.path.join(docs, name)), name)


if __name__ == "__main__":
    unittest.main(verbosity=2)
