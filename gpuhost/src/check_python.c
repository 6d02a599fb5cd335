/*
 * check_python.c -- the `python` check: the checkout, the script, the
 * venv and the libpython it names. Python is looked at by loading (not
 * initialising) the library the worker would load, so the version printed
 * is the one that will run.
 */
#include <stdio.h>
#include <string.h>

#include "tokenplace/buf.h"

#include "check.h"
#include "os.h"
#include "pyembed.h"
#include "venv.h"

void
gpuhost_check_python(const struct gpuhost_config *cfg, struct gpuhost_check *c)
{
	struct gpuhost_venv v;
	struct gpuhost_py *py = NULL;
	struct tp_buf j = TP_BUF_INIT;
	const char *cands[GPUHOST_VENV_MAX_CANDIDATES];
	char err[4096];
	enum gpuhost_outcome raw = GPUHOST_PASS;

	tp_buf_puts(&j, "{\"venv\":");
	tp_buf_json_str(&j, cfg->venv_path);
	tp_buf_puts(&j, ",\"script\":");
	tp_buf_json_str(&j, cfg->script_path);
	if (!gpuhost_is_dir(cfg->checkout_path)) {
		gpuhost_check_msg(c, "checkout directory %s does not exist\n",
		    cfg->checkout_path);
		raw = GPUHOST_FAIL;
	}
	if (!gpuhost_is_file(cfg->script_path)) {
		gpuhost_check_msg(c, "script %s does not exist\n", cfg->script_path);
		raw = GPUHOST_FAIL;
	}
	if (gpuhost_venv_load(cfg->venv_path, cfg->library, &v, err,
	    sizeof(err)) != 0) {
		gpuhost_check_msg(c, "%s\n", err);
		raw = GPUHOST_FAIL;
		goto out;
	}
	tp_buf_puts(&j, ",\"interpreter\":");
	tp_buf_json_str(&j, v.interpreter);
	tp_buf_puts(&j, ",\"home\":");
	tp_buf_json_str(&j, v.home);
	tp_buf_puts(&j, ",\"pyvenv_version\":");
	tp_buf_json_str(&j, v.version);
	for (size_t i = 0; i < v.ncandidates; i++)
		cands[i] = v.candidates[i];
	if (gpuhost_py_open(cands, v.ncandidates, &py, err, sizeof(err)) != 0) {
		gpuhost_check_msg(c, "%s\n", err);
		raw = GPUHOST_FAIL;
		goto out;
	}
	tp_buf_puts(&j, ",\"library\":");
	tp_buf_json_str(&j, gpuhost_py_path(py));
	tp_buf_puts(&j, ",\"version\":");
	tp_buf_json_str(&j, gpuhost_py_version(py));
	if (raw == GPUHOST_PASS)
		gpuhost_check_msg(c, "Python %.*s from %s; venv %s; script %s\n",
		    (int)strcspn(gpuhost_py_version(py), " "),
		    gpuhost_py_version(py), gpuhost_py_path(py), cfg->venv_path,
		    cfg->script_path);
	gpuhost_py_close(py);
out:
	tp_buf_puts(&j, "}");
	c->details = tp_buf_finish(&j, NULL);
	c->outcome = gpuhost_apply_mode(c->mode, raw);
}
