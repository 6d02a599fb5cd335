/*
 * gpu_probe.c -- the Python source of the runtime probe; see gpu.h.
 *
 * It runs in the PROBE worker, in the checkout, with the service's
 * Python, venv and environment. The checkout is taken off sys.path for
 * the llama_cpp import: token.place ships a llama_cpp.py shim at its
 * root that would otherwise answer instead of the installed runtime.
 */
#include "gpu.h"

const char gpuhost_probe_code[] =
"import os, sys\n"
"def out(k, v):\n"
"    v = '' if v is None else str(v)\n"
"    print('GPUHOST_PROBE %s=%s' % (k, v.replace('\\r', ' ').replace('\\n', ' ')), flush=True)\n"
"here = os.getcwd()\n"
"saved = list(sys.path)\n"
"sys.path[:] = [p for p in sys.path if p not in ('', '.', here)]\n"
"try:\n"
"    import llama_cpp\n"
"except ModuleNotFoundError as e:\n"
"    if e.name == 'llama_cpp':\n"
"        out('llama_cpp', 'absent')\n"
"    else:\n"
"        out('llama_cpp', 'error'); out('error', '%s: %s' % (type(e).__name__, e))\n"
"except BaseException as e:\n"
"    out('llama_cpp', 'error'); out('error', '%s: %s' % (type(e).__name__, e))\n"
"else:\n"
"    out('llama_cpp', 'present')\n"
"    out('version', getattr(llama_cpp, '__version__', 'unknown'))\n"
"    out('module', getattr(llama_cpp, '__file__', 'unknown'))\n"
"    f = getattr(llama_cpp, 'llama_supports_gpu_offload', None)\n"
"    if callable(f):\n"
"        try:\n"
"            out('gpu_offload', 'true' if f() else 'false')\n"
"        except BaseException as e:\n"
"            out('gpu_offload', 'unknown'); out('error', '%s: %s' % (type(e).__name__, e))\n"
"    else:\n"
"        out('gpu_offload', 'unknown'); out('error', 'llama_cpp has no llama_supports_gpu_offload()')\n"
"sys.path[:] = saved\n"
"if here not in sys.path:\n"
"    sys.path.insert(0, here)\n"
"try:\n"
"    from utils.llm.model_manager import ModelManager\n"
"    m = ModelManager()\n"
"    p = os.path.abspath(str(m.model_path))\n"
"    out('model_path', p)\n"
"    out('model_size', os.path.getsize(p) if os.path.isfile(p) else -1)\n"
"    out('model_url', getattr(m, 'url', ''))\n"
"except BaseException as e:\n"
"    out('model_error', '%s: %s' % (type(e).__name__, e))\n"
"out('end', '')\n";
