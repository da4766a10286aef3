"""The verl plugin: loaded by `import verl` (entry point), registers the cpu platform and `verl.trainer.main`,
and fails loudly instead of verl's silent debug-level log."""

import subprocess
import sys


def _python(code, **env):
    import os

    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=180,
                          env={**os.environ, **env})


def test_import_verl_registers_cpu_platform_engines_and_launcher():
    code = (
        "import verl, importlib.util\n"
        "import cadft_verl.plugin as p\n"
        "from verl.plugin.platform import get_platform, PlatformRegistry\n"
        "from verl.workers.engine.base import EngineRegistry\n"
        "assert p.LOADED\n"
        "assert 'cpu' in PlatformRegistry.registered_names()\n"
        "assert get_platform().device_name == 'cpu'\n"
        "assert 'cpu' in EngineRegistry._engines['language_model']['fsdp2']\n"
        "assert importlib.util.find_spec('verl.trainer.main').origin.endswith('cadft_verl/main.py')\n"
        "print('ok')\n"
    )
    proc = _python(code, VERL_PLATFORM="cpu")
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.strip().endswith("ok")


def test_cpu_platform_is_never_auto_detected():
    proc = _python("import verl\nfrom verl.plugin.platform import get_platform\nprint(get_platform().device_name)",
                   VERL_PLATFORM="")
    assert proc.returncode == 0 and proc.stdout.strip().splitlines()[-1] != "cpu"


def test_a_broken_plugin_fails_loudly():
    code = (
        "import sys\n"
        "sys.modules['cadft_verl.integration.launcher_alias'] = None  # make the plugin's own import fail\n"
        "import verl  # verl itself only logs the failure at debug level\n"
        "try:  # what every cadft_verl entry point does first\n"
        "    from cadft_verl.plugin import ensure_loaded\n"
        "    ensure_loaded()\n"
        "except ImportError:\n"
        "    print('raised')\n"
    )
    proc = _python(code)
    assert "cadft_verl: the verl plugin failed to load" in proc.stderr
    assert proc.stdout.strip().endswith("raised")
