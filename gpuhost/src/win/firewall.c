/*
 * firewall.c -- Windows Firewall through INetFwPolicy2 (COM): the check
 * (per active profile: enabled? block-all? a matching block rule? an allow
 * rule for this program or any program?) and `firewall add|remove`. The
 * matching itself is fwrules.c, shared with the Linux unit tests.
 */
#define COBJMACROS
#include <initguid.h>
#include <windows.h>
#include <netfw.h>
#include <oleauto.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <wchar.h>

#include "tokenplace/buf.h"

#include "../check.h"
#include "../fwrules.h"
#include "../os.h"
#include "../service.h"
#include "../wstr.h"

#define FW_MAX_RULES 4096
#define FW_GROUP L"tokenplace-gpuhost"

struct fw {
	bool com;
	INetFwPolicy2 *policy;
};

static HRESULT
fw_open(struct fw *f)
{
	HRESULT hr = CoInitializeEx(NULL, COINIT_APARTMENTTHREADED);

	memset(f, 0, sizeof(*f));
	f->com = SUCCEEDED(hr);
	return CoCreateInstance(&CLSID_NetFwPolicy2, NULL, CLSCTX_INPROC_SERVER,
	    &IID_INetFwPolicy2, (void **)&f->policy);
}

static void
fw_close(struct fw *f)
{
	if (f->policy != NULL)
		INetFwPolicy2_Release(f->policy);
	if (f->com)
		CoUninitialize();
}

static char *
bstr_utf8(BSTR b)
{
	char *s;
	size_t n = b != NULL ? wcslen(b) * 4 + 1 : 1;

	if ((s = malloc(n)) == NULL)
		return NULL;
	if (b == NULL || gpuhost_to_utf8(b, s, n) != 0)
		s[0] = '\0';
	return s;
}

/* Rules come with %ProgramFiles%-style paths. */
static char *
expand_utf8(BSTR b)
{
	wchar_t buf[MAX_PATH * 2];
	DWORD n;

	if (b == NULL || b[0] == L'\0')
		return bstr_utf8(b);
	n = ExpandEnvironmentStringsW(b, buf, (DWORD)(sizeof(buf) / sizeof(buf[0])));
	if (n == 0 || n > sizeof(buf) / sizeof(buf[0]))
		return bstr_utf8(b);
	return bstr_utf8(buf);
}

struct rules {
	size_t n;
	struct gpuhost_fwrule r[FW_MAX_RULES];
};

static void
rules_free(struct rules *rs)
{
	for (size_t i = 0; i < rs->n; i++) {
		free((char *)(uintptr_t)rs->r[i].name);
		free((char *)(uintptr_t)rs->r[i].local_ports);
		free((char *)(uintptr_t)rs->r[i].application);
	}
	free(rs);
}

static HRESULT
load_rules(INetFwPolicy2 *p, struct rules *rs)
{
	INetFwRules *rules = NULL;
	IUnknown *unk = NULL;
	IEnumVARIANT *en = NULL;
	VARIANT v;
	ULONG got;
	HRESULT hr;

	hr = INetFwPolicy2_get_Rules(p, &rules);
	if (FAILED(hr))
		return hr;
	hr = INetFwRules_get__NewEnum(rules, &unk);
	if (SUCCEEDED(hr))
		hr = IUnknown_QueryInterface(unk, &IID_IEnumVARIANT, (void **)&en);
	while (SUCCEEDED(hr) && rs->n < FW_MAX_RULES) {
		INetFwRule *r = NULL;
		struct gpuhost_fwrule *x = &rs->r[rs->n];
		VARIANT_BOOL enabled = VARIANT_FALSE;
		NET_FW_RULE_DIRECTION dir = NET_FW_RULE_DIR_OUT;
		NET_FW_ACTION act = NET_FW_ACTION_ALLOW;
		LONG proto = 0, prof = 0;
		BSTR name = NULL, ports = NULL, app = NULL;

		VariantInit(&v);
		if (IEnumVARIANT_Next(en, 1, &v, &got) != S_OK || got == 0)
			break;
		if (v.vt == VT_DISPATCH && v.pdispVal != NULL &&
		    SUCCEEDED(IDispatch_QueryInterface(v.pdispVal, &IID_INetFwRule,
		    (void **)&r))) {
			(void)INetFwRule_get_Enabled(r, &enabled);
			(void)INetFwRule_get_Direction(r, &dir);
			(void)INetFwRule_get_Action(r, &act);
			(void)INetFwRule_get_Protocol(r, &proto);
			(void)INetFwRule_get_Profiles(r, &prof);
			(void)INetFwRule_get_Name(r, &name);
			(void)INetFwRule_get_LocalPorts(r, &ports);
			(void)INetFwRule_get_ApplicationName(r, &app);
			x->enabled = enabled == VARIANT_TRUE;
			x->inbound = dir == NET_FW_RULE_DIR_IN;
			x->allow = act == NET_FW_ACTION_ALLOW;
			x->protocol = proto;
			x->profiles = prof;
			x->name = bstr_utf8(name);
			x->local_ports = ports != NULL ? bstr_utf8(ports) : NULL;
			x->application = expand_utf8(app);
			SysFreeString(name);
			SysFreeString(ports);
			SysFreeString(app);
			INetFwRule_Release(r);
			rs->n++;
		}
		VariantClear(&v);
	}
	if (en != NULL)
		IEnumVARIANT_Release(en);
	if (unk != NULL)
		IUnknown_Release(unk);
	INetFwRules_Release(rules);
	return hr;
}

void
gpuhost_check_firewall(const struct gpuhost_config *cfg,
    struct gpuhost_check *c)
{
	static const long bits[3] = { GPUHOST_FW_DOMAIN, GPUHOST_FW_PRIVATE,
	    GPUHOST_FW_PUBLIC };
	struct tp_buf j = TP_BUF_INIT;
	struct rules *rs = NULL;
	struct fw f;
	char exe[GPUHOST_PATH_MAX], e[256];
	uint16_t port = (uint16_t)cfg->port;
	LONG active = 0;
	NET_FW_MODIFY_STATE ms = NET_FW_MODIFY_STATE_OK;
	HRESULT hr;
	enum gpuhost_outcome raw = GPUHOST_UNKNOWN;
	bool any_closed = false, any_unknown = false, listed = false;

	if (gpuhost_exe_path(exe, sizeof(exe)) != 0)
		exe[0] = '\0';
	hr = fw_open(&f);
	tp_buf_puts(&j, "{\"profiles\":[");
	if (FAILED(hr)) {
		gpuhost_check_msg(c, "Windows Firewall API unavailable: %s\n",
		    gpuhost_win_error((unsigned long)hr, e, sizeof(e)));
		goto out;
	}
	hr = INetFwPolicy2_get_CurrentProfileTypes(f.policy, &active);
	if (FAILED(hr) || active == 0) {
		/* Wine answers E_NOTIMPL here: its firewall is a stub. */
		gpuhost_check_msg(c, "cannot read the active firewall profiles: %s\n",
		    gpuhost_win_error((unsigned long)hr, e, sizeof(e)));
		goto out;
	}
	if (SUCCEEDED(INetFwPolicy2_get_LocalPolicyModifyState(f.policy, &ms)) &&
	    ms == NET_FW_MODIFY_STATE_GP_OVERRIDE)
		gpuhost_check_msg(c, "note: Group Policy manages this firewall; "
		    "local rules may be ignored\n");
	rs = calloc(1, sizeof(*rs));
	if (rs == NULL || FAILED(load_rules(f.policy, rs))) {
		gpuhost_check_msg(c, "cannot enumerate firewall rules\n");
		goto out;
	}
	for (size_t i = 0; i < 3; i++) {
		VARIANT_BOOL on = VARIANT_TRUE, blockall = VARIANT_FALSE;
		const char *verdict;
		size_t which = (size_t)-1;

		if ((active & bits[i]) == 0)
			continue;
		(void)INetFwPolicy2_get_FirewallEnabled(f.policy,
		    (NET_FW_PROFILE_TYPE2)bits[i], &on);
		(void)INetFwPolicy2_get_BlockAllInboundTraffic(f.policy,
		    (NET_FW_PROFILE_TYPE2)bits[i], &blockall);
		if (on != VARIANT_TRUE) {
			verdict = "open";
			gpuhost_check_msg(c, "%s profile: firewall off (another "
			    "firewall may be in charge)\n",
			    gpuhost_fw_profile_name(bits[i]));
		} else if (blockall == VARIANT_TRUE) {
			verdict = "blocked";
			any_closed = true;
			gpuhost_check_msg(c, "%s profile: blocks all inbound "
			    "connections whatever the rules say\n",
			    gpuhost_fw_profile_name(bits[i]));
		} else {
			switch (gpuhost_fw_evaluate(rs->r, rs->n, port, bits[i], exe,
			    &which)) {
			case GPUHOST_FW_ALLOWED:
				verdict = "allowed";
				gpuhost_check_msg(c, "%s profile: TCP %u allowed by "
				    "rule \"%s\"\n", gpuhost_fw_profile_name(bits[i]),
				    port, rs->r[which].name);
				break;
			case GPUHOST_FW_BLOCKED:
				verdict = "blocked";
				any_closed = true;
				gpuhost_check_msg(c, "%s profile: TCP %u blocked by "
				    "rule \"%s\" (block wins over allow)\n",
				    gpuhost_fw_profile_name(bits[i]), port,
				    rs->r[which].name);
				break;
			default:
				verdict = "no-rule";
				any_closed = true;
				gpuhost_check_msg(c, "%s profile: no rule allows "
				    "inbound TCP %u for %s (tokenplace-gpuhost "
				    "firewall add)\n", gpuhost_fw_profile_name(bits[i]),
				    port, exe);
			}
		}
		if (listed)
			tp_buf_puts(&j, ",");
		listed = true;
		tp_buf_puts(&j, "{\"profile\":");
		tp_buf_json_str(&j, gpuhost_fw_profile_name(bits[i]));
		tp_buf_puts(&j, ",\"verdict\":");
		tp_buf_json_str(&j, verdict);
		tp_buf_puts(&j, "}");
	}
	if (ms == NET_FW_MODIFY_STATE_GP_OVERRIDE && !any_closed)
		any_unknown = true;
	raw = any_closed ? GPUHOST_FAIL : any_unknown ? GPUHOST_UNKNOWN :
	    GPUHOST_PASS;
out:
	tp_buf_puts(&j, "]}");
	c->details = tp_buf_finish(&j, NULL);
	c->outcome = gpuhost_apply_mode(c->mode, raw);
	if (rs != NULL)
		rules_free(rs);
	fw_close(&f);
}

static int
expand_rule_name(const struct gpuhost_config *cfg, wchar_t **out)
{
	struct gpuhost_config tmp = *cfg;
	char buf[512];

	tmp.args = cfg->fw_rule_name;
	if (gpuhost_config_expand_args(&tmp, buf, sizeof(buf)) != 0)
		return -1;
	*out = gpuhost_to_wide(buf);
	return *out != NULL ? 0 : -1;
}

int
gpuhost_firewall_command(const struct gpuhost_config *cfg, const char *exe,
    const char *action)
{
	struct fw f;
	INetFwRules *rules = NULL;
	INetFwRule *rule = NULL;
	wchar_t *wname = NULL, *wexe = NULL, ports[16];
	BSTR b;
	long mask;
	char e[256];
	HRESULT hr;
	int rc = 2;

	if (gpuhost_fw_profiles_parse(cfg->fw_profiles, &mask) != 0) {
		fprintf(stderr, "tokenplace-gpuhost: firewall.profiles: unknown "
		    "profile in \"%s\"\n", cfg->fw_profiles);
		return 2;
	}
	if (expand_rule_name(cfg, &wname) != 0 ||
	    (wexe = gpuhost_to_wide(exe)) == NULL)
		goto done;
	hr = fw_open(&f);
	if (SUCCEEDED(hr))
		hr = INetFwPolicy2_get_Rules(f.policy, &rules);
	if (FAILED(hr)) {
		fprintf(stderr, "tokenplace-gpuhost: Windows Firewall: %s\n",
		    gpuhost_win_error((unsigned long)hr, e, sizeof(e)));
		goto out;
	}
	b = SysAllocString(wname);
	if (strcmp(action, "remove") == 0) {
		int removed = 0;

		/* Several rules may share the name; Remove drops one at a time. */
		while (removed < 64 && SUCCEEDED(INetFwRules_Item(rules, b, &rule))) {
			INetFwRule_Release(rule);
			rule = NULL;
			if (FAILED(INetFwRules_Remove(rules, b)))
				break;
			removed++;
		}
		printf("removed %d firewall rule(s) named \"%ls\"\n", removed, wname);
		rc = 0;
		SysFreeString(b);
		goto out;
	}
	hr = CoCreateInstance(&CLSID_NetFwRule, NULL, CLSCTX_INPROC_SERVER,
	    &IID_INetFwRule, (void **)&rule);
	if (FAILED(hr)) {
		SysFreeString(b);
		fprintf(stderr, "tokenplace-gpuhost: NetFwRule: %s\n",
		    gpuhost_win_error((unsigned long)hr, e, sizeof(e)));
		goto out;
	}
	swprintf(ports, sizeof(ports) / sizeof(ports[0]), L"%lld",
	    (long long)cfg->port);
	(void)INetFwRule_put_Name(rule, b);
	SysFreeString(b);
	b = SysAllocString(L"Inbound TCP for the token.place server run by "
	    L"tokenplace-gpuhost");
	(void)INetFwRule_put_Description(rule, b);
	SysFreeString(b);
	b = SysAllocString(FW_GROUP);
	(void)INetFwRule_put_Grouping(rule, b);
	SysFreeString(b);
	(void)INetFwRule_put_Protocol(rule, NET_FW_IP_PROTOCOL_TCP);
	b = SysAllocString(ports);
	(void)INetFwRule_put_LocalPorts(rule, b);
	SysFreeString(b);
	/* The worker is this same executable, so the rule names it. */
	b = SysAllocString(wexe);
	(void)INetFwRule_put_ApplicationName(rule, b);
	SysFreeString(b);
	(void)INetFwRule_put_Direction(rule, NET_FW_RULE_DIR_IN);
	(void)INetFwRule_put_Action(rule, NET_FW_ACTION_ALLOW);
	(void)INetFwRule_put_Profiles(rule, mask);
	(void)INetFwRule_put_Enabled(rule, VARIANT_TRUE);
	hr = INetFwRules_Add(rules, rule);
	if (FAILED(hr)) {
		fprintf(stderr, "tokenplace-gpuhost: adding the rule failed: %s%s\n",
		    gpuhost_win_error((unsigned long)hr, e, sizeof(e)),
		    hr == E_ACCESSDENIED ? " (run from an elevated prompt)" : "");
		goto out;
	}
	printf("added firewall rule \"%ls\": inbound TCP %lld for %s, profiles %s\n",
	    wname, (long long)cfg->port, exe, cfg->fw_profiles);
	if (mask & GPUHOST_FW_PUBLIC)
		printf("note: the Public profile is open too; prefer making the "
		    "network Private (Set-NetConnectionProfile)\n");
	rc = 0;
out:
	if (rule != NULL)
		INetFwRule_Release(rule);
	if (rules != NULL)
		INetFwRules_Release(rules);
	fw_close(&f);
done:
	free(wname);
	free(wexe);
	return rc;
}
