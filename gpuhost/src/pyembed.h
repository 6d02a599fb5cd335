/*
 * pyembed.h -- CPython loaded at run time.
 *
 * The only module that resolves CPython symbols. The library is opened
 * with dlopen(RTLD_NOW | RTLD_GLOBAL) / LoadLibraryExW and only Stable
 * ABI functions are bound (Py_BytesMain or Py_Main, Py_IsInitialized,
 * PyErr_SetInterrupt, Py_AddPendingCall, PyErr_SetNone,
 * PyExc_SystemExit, Py_GetVersion), so one binary serves CPython 3.8+.
 * No Python.h is included.
 */
#ifndef GPUHOST_PYEMBED_H
#define GPUHOST_PYEMBED_H

#include <stdbool.h>
#include <stddef.h>

struct gpuhost_py;

/*
 * Tries each candidate path in order and binds the symbols from the first
 * that loads. Returns 0 and *out (free with gpuhost_py_close), or -1 with
 * a message in err listing every path tried and why it failed.
 */
int gpuhost_py_open(const char *const *candidates, size_t n,
    struct gpuhost_py **out, char *err, size_t errlen);

/* Path of the library that was loaded. */
const char *gpuhost_py_path(const struct gpuhost_py *py);

/* Py_GetVersion(): "3.11.2 (main, ...) [GCC ...]". Valid before init. */
const char *gpuhost_py_version(const struct gpuhost_py *py);

/*
 * Runs the interpreter like the python executable with argv (UTF-8;
 * argv[0] should be the venv's interpreter). Returns its exit status.
 * Call on the process's main thread; at most once per process.
 */
int gpuhost_py_main(struct gpuhost_py *py, int argc, char **argv);

/* True once the runtime is initialised (interrupts are then delivered). */
bool gpuhost_py_initialized(const struct gpuhost_py *py);

/*
 * Asks the running script to stop: PyErr_SetInterrupt() (SIGINT
 * semantics, KeyboardInterrupt in the main thread). Async-signal-safe,
 * any thread. Returns false when the runtime is not initialised.
 */
bool gpuhost_py_interrupt(struct gpuhost_py *py);

/*
 * Escalation: schedules SystemExit in the main thread with
 * Py_AddPendingCall and interrupts again. Returns false when the runtime
 * is not initialised or the pending-call queue is full.
 */
bool gpuhost_py_escalate(struct gpuhost_py *py);

/* Unloads the library (only when Python never ran) and frees py. */
void gpuhost_py_close(struct gpuhost_py *py);

#endif
