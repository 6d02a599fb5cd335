"""The Valkey recipe: charts/tokenplace-valkey (Valkey with Sentinel, three
pods across nodes) rendered and checked object by object, its refusals,
its password kept across upgrades, and its configuration files (valkey.conf,
sentinel.conf and the init script that completes them per pod) run with
Debian's redis-server and redis-sentinel on loopback: a master, two
replicas and three Sentinels that agree on the master.

Also the guide's walk from one in-memory relay to three on Valkey
(docs/relay-deploy.md): its values files render, and each command of it is
one these tests exercise. Called from chart_ha.run / test_chart.check_guide
with the test_chart module (`t`).
"""
import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time

import yaml

from fake_apiserver import FakeAPIServer

VALKEY_REL = "charts/tokenplace-valkey"
RELEASE = "valkey"
REDIS_SERVER = shutil.which("redis-server") or "/usr/bin/redis-server"
REDIS_CLI = shutil.which("redis-cli") or "/usr/bin/redis-cli"
DEADLINE = 30           # seconds any one condition may take to appear
MASTER = "tokenplace"


def render(t, *args, live=None):
    cmd = [t.HELM, "template", RELEASE, VALKEY_REL, "--namespace",
           t.NAMESPACE, *args]
    env = dict(t.HELM_ENV)
    api = None
    if live is not None:
        api = FakeAPIServer(live, release=RELEASE).__enter__()
        env["KUBECONFIG"] = api.kubeconfig
        cmd += ["--dry-run=server", "--disable-openapi-validation"]
    try:
        p = subprocess.run(cmd, cwd=t.ROOT, env=env, capture_output=True,
                           text=True, timeout=t.COMMAND_TIMEOUT)
    finally:
        if api is not None:
            api.__exit__(None, None, None)
    if p.returncode != 0:
        return p.returncode, [], p.stderr.strip()
    return 0, [d for d in yaml.safe_load_all(p.stdout) if d], ""


def container(sts, name):
    spec = sts["spec"]["template"]["spec"]
    return next((c for c in spec.get("containers", []) +
                 spec.get("initContainers", []) if c["name"] == name), None)


def env_of(c):
    return {e["name"]: e.get("value", e.get("valueFrom"))
            for e in c.get("env", [])}


def check_objects(t, objs):
    R = t.R
    n = "valkey"
    sts = t.find(objs, "StatefulSet", RELEASE)
    if not R.check(f"{n}: StatefulSet rendered", sts is not None,
                   str(t.kinds(objs))):
        return
    spec = sts["spec"]
    pod = spec["template"]["spec"]
    labels = spec["template"]["metadata"]["labels"]
    R.check(f"{n}: three pods", spec["replicas"] == 3)
    anti = pod.get("affinity", {}).get("podAntiAffinity", {}).get(
        "requiredDuringSchedulingIgnoredDuringExecution", [])
    R.check(f"{n}: one pod per node (required anti-affinity on hostname)",
            len(anti) == 1 and anti[0]["topologyKey"] ==
            "kubernetes.io/hostname" and t.selects(
                anti[0]["labelSelector"]["matchLabels"], labels), str(anti))
    vct = spec.get("volumeClaimTemplates", [])
    R.check(f"{n}: data on a PersistentVolumeClaim (1Gi, ReadWriteOnce)",
            len(vct) == 1 and vct[0]["metadata"]["name"] == "data"
            and vct[0]["spec"]["resources"]["requests"]["storage"] == "1Gi"
            and vct[0]["spec"]["accessModes"] == ["ReadWriteOnce"], str(vct))
    vk, sn, init = (container(sts, c) for c in ("valkey", "sentinel",
                                                "config"))
    R.check(f"{n}: containers valkey and sentinel, init container config",
            None not in (vk, sn, init))
    if None in (vk, sn, init):
        return
    R.check(f"{n}: the AOF directory /data is the PVC",
            {"name": "data", "mountPath": "/data"} in vk["volumeMounts"])
    for c in (vk, sn):
        R.check(f"{n}: {c['name']} has liveness and readiness probes",
                "exec" in c.get("livenessProbe", {})
                and "exec" in c.get("readinessProbe", {}))
    for c in (vk, sn, init):
        sc = c.get("securityContext", {})
        R.check(f"{n}: {c['name']} hardened (non-root, read-only root, no "
                "privilege escalation, no capabilities)",
                sc.get("runAsNonRoot") is True
                and sc.get("readOnlyRootFilesystem") is True
                and sc.get("allowPrivilegeEscalation") is False
                and sc.get("capabilities", {}).get("drop") == ["ALL"], str(sc))
        res = c.get("resources", {})
        R.check(f"{n}: {c['name']} has requests and limits",
                all(res.get(k, {}).get(r) for k in ("requests", "limits")
                    for r in ("cpu", "memory")), str(res))
    psc = pod.get("securityContext", {})
    R.check(f"{n}: pod runs as a numeric non-root user with RuntimeDefault "
            "seccomp", psc.get("runAsNonRoot") is True
            and psc.get("runAsUser", 0) > 0
            and psc.get("seccompProfile") == {"type": "RuntimeDefault"})
    R.check(f"{n}: the password reaches the probes by environment, never "
            "argv", all(env_of(vk).get(v) == {"secretKeyRef": {
                "name": RELEASE, "key": "password"}}
                for v in ("VALKEYCLI_AUTH", "REDISCLI_AUTH"))
            and "-a" not in " ".join(vk["readinessProbe"]["exec"]["command"]))
    ienv = env_of(init)
    R.check(f"{n}: init sees every Sentinel by its pod's DNS name",
            ienv.get("SENTINEL_ADDRS", "").split() == [
                f"{RELEASE}-{i}.{RELEASE}-headless.{t.NAMESPACE}.svc."
                f"cluster.local:26379" for i in range(3)])
    R.check(f"{n}: noeviction, and failover off by default (replica-"
            "priority 0: the master stays pod 0 for redis:// clients)",
            ienv.get("MAXMEMORY_POLICY") == "noeviction"
            and ienv.get("REPLICA_PRIORITY") == "0", str(ienv))
    pdb = t.find(objs, "PodDisruptionBudget", RELEASE)
    R.check(f"{n}: PDB: at most one pod down, selecting the pods",
            pdb is not None and pdb["spec"] == {"maxUnavailable": 1,
                                                "selector": {"matchLabels": {
                                                    k: labels[k] for k in
                                                    pdb["spec"]["selector"][
                                                        "matchLabels"]}}}
            and t.selects(pdb["spec"]["selector"]["matchLabels"], labels))
    sec = t.find(objs, "Secret", RELEASE)
    pw = sec and __import__("base64").b64decode(sec["data"]["password"])
    R.check(f"{n}: the chart makes the password Secret (32 random "
            "characters, kept on uninstall)", sec is not None
            and re.fullmatch(rb"[A-Za-z0-9]{32}", pw or b"")
            and sec["metadata"]["annotations"].get(
                "helm.sh/resource-policy") == "keep")
    master = t.find(objs, "Service", f"{RELEASE}-master")
    R.check(f"{n}: {RELEASE}-master selects pod 0 only", master is not None
            and master["spec"]["selector"].get(
                "statefulset.kubernetes.io/pod-name") == f"{RELEASE}-0"
            and t.selects(master["spec"]["selector"], dict(
                labels, **{"statefulset.kubernetes.io/pod-name":
                           f"{RELEASE}-0"})))
    headless = t.find(objs, "Service", f"{RELEASE}-headless")
    R.check(f"{n}: headless Service publishes pods before they are ready",
            headless is not None and headless["spec"]["clusterIP"] == "None"
            and headless["spec"]["publishNotReadyAddresses"] is True
            and spec["serviceName"] == f"{RELEASE}-headless")
    R.check(f"{n}: {RELEASE}-sentinel on 26379", t.find(
        objs, "Service", f"{RELEASE}-sentinel") is not None)
    return sec


BAD = [
    ("an evicting policy", ["--set", "config.maxmemoryPolicy=allkeys-lru"],
     "/config/maxmemoryPolicy"),
    ("two pods", ["--set", "replicas=2"], "/replicas"),
    ("quorum above the pods", ["--set", "sentinel.quorum=4"],
     "sentinel.quorum must not exceed replicas"),
    ("unknown key", ["--set", "persistence.enabled=false"],
     "additional properties 'enabled' not allowed"),
    ("privilege escalation", ["--set",
                              "securityContext.allowPrivilegeEscalation=true"],
     "/securityContext/allowPrivilegeEscalation"),
]


# --------------------------------------------- the files, on redis-server

def free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def cli(port, *args, password=None):
    env = dict(os.environ)
    env.pop("REDISCLI_AUTH", None)
    if password:
        env["REDISCLI_AUTH"] = password
    p = subprocess.run([REDIS_CLI, "-h", "127.0.0.1", "-p", str(port),
                        "--raw", *args], capture_output=True, text=True,
                       env=env, timeout=20)
    return (p.stdout + p.stderr).strip()


def config_get(port, key, password):
    """One CONFIG GET value ("" when empty)."""
    lines = cli(port, "CONFIG", "GET", key, password=password).split("\n")
    return lines[1] if len(lines) > 1 else ""


def wait_until(pred, what):
    deadline = time.monotonic() + DEADLINE
    while True:
        got = pred()
        if got:
            return got
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


def info_field(text, key):
    m = re.search(rf"^{key}:(.*)$", text, re.M)
    return m.group(1).strip() if m else None


def sentinel_master(port):
    """SENTINEL MASTER as a dict."""
    lines = cli(port, "SENTINEL", "MASTER", MASTER).splitlines()
    return dict(zip(lines[0::2], lines[1::2]))


class LocalSet:
    """Three "pods" on loopback, from the rendered ConfigMap and env."""

    def __init__(self, cm, init_env, password):
        self.dir = tempfile.mkdtemp(prefix="tp-valkey-")
        self.password = password
        self.procs = []
        for name in ("valkey.conf", "sentinel.conf", "init.sh"):
            with open(os.path.join(self.dir, name), "w",
                      encoding="utf-8") as f:
                f.write(cm["data"][name] + "\n")
        self.ports = [free_port() for _ in range(3)]
        self.sports = [free_port() for _ in range(3)]
        self.env = {k: v for k, v in init_env.items()
                    if isinstance(v, str)}
        self.servers = [None] * 3

    def pod_dir(self, i):
        d = os.path.join(self.dir, f"pod-{i}")
        os.makedirs(os.path.join(d, "data"), exist_ok=True)
        return d

    def init(self, i):
        """Runs the chart's init script for pod i; returns its output."""
        env = dict(os.environ, **self.env)
        env.update({
            "POD_NAME": f"{RELEASE}-{i}", "SELF_HOST": "127.0.0.1",
            "FIRST_HOST": "127.0.0.1", "FIRST_PORT": str(self.ports[0]),
            "VALKEY_PORT": str(self.ports[i]),
            "SENTINEL_PORT": str(self.sports[i]),
            "SENTINEL_ADDRS": " ".join(f"127.0.0.1:{p}"
                                       for p in self.sports),
            "VALKEY_PASSWORD": self.password,
            "BASE_CONF": os.path.join(self.dir, "valkey.conf"),
            "BASE_SENTINEL_CONF": os.path.join(self.dir, "sentinel.conf"),
            "CONF_DIR": self.pod_dir(i), "CLI": REDIS_CLI,
            "DATA_DIR": os.path.join(self.pod_dir(i), "data")})
        p = subprocess.run(["sh", os.path.join(self.dir, "init.sh")],
                           env=env, capture_output=True, text=True,
                           timeout=60)
        if p.returncode != 0:
            raise AssertionError(f"init.sh failed: {p.stderr}")
        return p.stdout

    def start_server(self, i):
        """redis-server on the pod's generated file, listening on loopback
        only (the one override: the pod binds 0.0.0.0)."""
        d = self.pod_dir(i)
        proc = subprocess.Popen(
            [REDIS_SERVER, os.path.join(d, "valkey.conf"),
             "--bind", "127.0.0.1", "--daemonize", "no"],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
            start_new_session=True)
        self.procs.append(proc)
        self.servers[i] = proc
        wait_until(lambda: proc.poll() is not None or "PONG" in cli(
            self.ports[i], "PING", password=self.password),
            f"server {i}")
        if proc.poll() is not None:
            raise AssertionError(proc.stdout.read().decode())

    def start_sentinel(self, i):
        d = self.pod_dir(i)
        proc = subprocess.Popen(
            [REDIS_SERVER, os.path.join(d, "sentinel.conf"), "--sentinel",
             "--bind", "127.0.0.1", "--daemonize", "no"],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
            start_new_session=True)
        self.procs.append(proc)
        wait_until(lambda: proc.poll() is not None or "PONG" in cli(
            self.sports[i], "PING"), f"sentinel {i}")
        if proc.poll() is not None:
            raise AssertionError(proc.stdout.read().decode())

    def stop_server(self, i):
        proc = self.servers[i]
        proc.send_signal(signal.SIGTERM)
        proc.communicate(timeout=30)

    def close(self):
        for proc in self.procs:
            if proc.poll() is None:
                proc.kill()
            proc.communicate(timeout=30)
        shutil.rmtree(self.dir, ignore_errors=True)


def check_files_run(t, objs):
    R = t.R
    n = "valkey files on redis-server"
    cm = t.find(objs, "ConfigMap", RELEASE)
    sts = t.find(objs, "StatefulSet", RELEASE)
    if not R.check(f"{n}: redis-server and redis-cli present",
                   os.access(REDIS_SERVER, os.X_OK)
                   and os.access(REDIS_CLI, os.X_OK)):
        return
    init_env = env_of(container(sts, "config"))
    s = LocalSet(cm, init_env, "p@ss\"w\\rd 1")
    try:
        out = [s.init(0)]
        s.start_server(0)
        s.start_sentinel(0)
        for i in (1, 2):
            out.append(s.init(i))
            s.start_server(i)
            s.start_sentinel(i)
        R.check(f"{n}: pod 0 is the master of a new set, pods 1 and 2 learn "
                "it from a Sentinel", "no sentinel knows" in out[0]
                and "configured as the master" in out[0]
                and all("sentinel 127.0.0.1:" in o and "replica of" in o
                        for o in out[1:]), " | ".join(out))
        p0 = s.ports[0]
        pw = s.password
        R.check(f"{n}: a password is required (NOAUTH without one)",
                "NOAUTH" in cli(p0, "PING"))
        conf = {k: config_get(p0, k, pw) for k in (
            "maxmemory-policy", "appendonly", "maxmemory", "appendfsync",
            "save")}
        R.check(f"{n}: noeviction, AOF on (everysec), no RDB, maxmemory "
                "200mb", conf == {"maxmemory-policy": "noeviction",
                                  "appendonly": "yes",
                                  "maxmemory": str(200 * 1024 * 1024),
                                  "appendfsync": "everysec", "save": ""},
                str(conf))
        wait_until(lambda: info_field(cli(p0, "INFO", "replication",
                                          password=pw),
                                      "connected_slaves") == "2",
                   "two replicas connected")
        R.check(f"{n}: the master has two replicas", True)
        cli(p0, "SET", "tp:probe", "v1", password=pw)
        for i in (1, 2):
            wait_until(lambda i=i: cli(s.ports[i], "GET", "tp:probe",
                                       password=pw) == "v1",
                       f"replica {i} has the key")
            R.check(f"{n}: replica {i} refuses writes (READONLY), priority "
                    "0", "READONLY" in cli(s.ports[i], "SET", "x", "1",
                                           password=pw)
                    and config_get(s.ports[i], "replica-priority", pw)
                    == "0")
        for i in range(3):
            m = wait_until(lambda i=i: (lambda d: d if d.get(
                "num-slaves") == "2" and d.get("num-other-sentinels") == "2"
                else None)(sentinel_master(s.sports[i])),
                f"sentinel {i} sees two replicas and two sentinels")
            R.check(f"{n}: sentinel {i}: master 127.0.0.1:{p0}, quorum 2, "
                    "two replicas, two other sentinels",
                    m.get("ip") == "127.0.0.1" and m.get("port") == str(p0)
                    and m.get("quorum") == "2"
                    and "master" in m.get("flags", ""), str(m))
        R.check(f"{n}: SENTINEL CKQUORUM", cli(s.sports[0], "SENTINEL",
                                               "CKQUORUM", MASTER)
                .startswith("OK"))
        # Pod 0 restarts (its data on the PVC): the Sentinels still name it,
        # so it comes back as the master with its AOF.
        s.stop_server(0)
        again = s.init(0)
        R.check(f"{n}: a restarted pod 0 asks the Sentinels and stays "
                "master", "says the master is 127.0.0.1:%d" % p0 in again
                and "configured as the master" in again
                and "replicaof" not in open(os.path.join(
                    s.pod_dir(0), "valkey.conf"), encoding="utf-8").read(),
                again)
        s.start_server(0)
        R.check(f"{n}: the AOF brought the data back", wait_until(
            lambda: cli(p0, "GET", "tp:probe", password=pw) == "v1",
            "key after restart"))
    except AssertionError as e:
        R.check(f"{n}: ran", False, str(e)[-1500:])
    finally:
        s.close()


def run(t):
    """Checks; returns the rendered objects for schema validation."""
    R = t.R
    p = t.helm("lint", "--strict", VALKEY_REL)
    R.check("valkey: helm lint --strict", p.returncode == 0,
            (p.stdout + p.stderr)[-1500:])
    rc, objs, err = render(t)
    if not R.check("valkey: helm template", rc == 0, err):
        return []
    sec = check_objects(t, objs)
    cm = t.find(objs, "ConfigMap", RELEASE)
    for name in ("valkey.conf", "sentinel.conf", "init.sh"):
        with open(os.path.join(t.ROOT, VALKEY_REL, "files", name),
                  encoding="utf-8") as f:
            R.check(f"valkey: ConfigMap {name} is files/{name}, byte for "
                    "byte", cm is not None and cm["data"].get(name, "") + "\n"
                    == f.read())
    for name, args, message in BAD:
        rc2, _o, err2 = render(t, *args)
        R.check(f"valkey refused: {name}", rc2 != 0 and message in err2,
                f"rc={rc2}, wanted {message!r} in: {err2[-500:]}")
    if sec is not None:
        rc3, again, err3 = render(t, live=[sec])
        sec2 = t.find(again, "Secret", RELEASE) if rc3 == 0 else None
        R.check("valkey: an upgrade keeps the password (lookup)",
                sec2 is not None and sec2["data"] == sec["data"], err3)
    rc4, ext, err4 = render(t, "--set", "auth.existingSecret=my-valkey",
                            "--set", "sentinel.failover=true")
    sts = t.find(ext, "StatefulSet", RELEASE) if rc4 == 0 else None
    R.check("valkey: with auth.existingSecret no Secret is made, the pods "
            "read that one; failover true sets replica-priority 100",
            sts is not None and t.find(ext, "Secret") is None
            and env_of(container(sts, "valkey"))["REDISCLI_AUTH"] == {
                "secretKeyRef": {"name": "my-valkey", "key": "password"}}
            and env_of(container(sts, "config"))["REPLICA_PRIORITY"] == "100",
            err4)
    check_files_run(t, objs)
    return [{"scenario": "valkey", "object": o} for o in objs]


# ----------------------------------------------------------------- guide

def guide_values(t, text):
    """{file name: path} of the guide's values files, written to TMP."""
    out = {}
    for b in t.guide_blocks(text, "yaml"):
        first = b.lstrip().splitlines()[0]
        m = re.fullmatch(r"#\s*([-a-z0-9]+\.yaml)", first.strip())
        if m:
            path = os.path.join(t.TMP, m.group(1))
            with open(path, "w", encoding="utf-8") as f:
                f.write(b)
            out[m.group(1)] = path
    return out


_GUIDE = {}


def check_guide_recipe(t, text):
    """The walk to three relays on Valkey: the Valkey values and the
    relay's render; the relay values point at Valkey's master Service with
    the password from Valkey's own Secret."""
    R = t.R
    files = guide_values(t, text)
    _GUIDE.update(files)
    need = ("valkey-values.yaml", "relay-values-valkey.yaml")
    if not R.check("guide: has valkey-values.yaml and "
                   "relay-values-valkey.yaml", all(f in files for f in need),
                   str(sorted(files))):
        return
    rc, vobjs, err = render(t, "-f", files["valkey-values.yaml"])
    R.check("guide: valkey-values.yaml renders", rc == 0, err)
    if rc == 0:
        check_objects(t, vobjs)
        t.validate_objects([{"scenario": "guide valkey", "object": o}
                            for o in vobjs])
    rc, robjs, err = t.render("-f", files["relay-values.yaml"]
                              if "relay-values.yaml" in files else
                              os.path.join(t.TMP, "relay-values.yaml"),
                              "-f", files["relay-values-valkey.yaml"])
    if not R.check("guide: relay-values.yaml + relay-values-valkey.yaml "
                   "render", rc == 0, err):
        return
    t.check_common("guide valkey values", robjs)
    dep = t.find(robjs, "Deployment", t.RELEASE)
    env = t.env_map(t.relay_container(robjs))
    R.check("guide valkey values: three replicas, RollingUpdate, spread",
            dep["spec"]["replicas"] == 3
            and dep["spec"]["strategy"]["type"] == "RollingUpdate"
            and dep["spec"]["template"]["spec"].get(
                "topologySpreadConstraints"))
    R.check("guide valkey values: the URL is Valkey's master Service",
            env.get("RELAY_STATE_URL") ==
            f"redis://{RELEASE}-master.{t.NAMESPACE}.svc:6379/0",
            str(env.get("RELAY_STATE_URL")))
    R.check("guide valkey values: the password from Valkey's own Secret",
            env.get("RELAY_STATE_PASSWORD") == {"secretKeyRef": {
                "name": RELEASE, "key": "password"}})
    rules = t.state_egress(robjs)
    R.check("guide valkey values: egress to the Valkey pods on 6379",
            rules == [{"ports": [{"port": 6379, "protocol": "TCP"}],
                       "to": [{"podSelector": {"matchLabels": {
                           "app.kubernetes.io/name": "valkey",
                           "app.kubernetes.io/instance": RELEASE}}}]}],
            str(rules))
    t.validate_objects([{"scenario": "guide relay on valkey", "object": o}
                        for o in robjs])


# Commands of the guide's Valkey walk and what exercises them.
CLI_CHECKED = {
    ("valkey", "INFO replication"): "check_files_run (INFO replication)",
    ("valkey", "CONFIG GET maxmemory-policy"): "check_files_run (CONFIG GET)",
    ("sentinel", f"-p 26379 SENTINEL master {MASTER}"):
        "check_files_run (SENTINEL MASTER)",
    ("sentinel", f"-p 26379 SENTINEL ckquorum {MASTER}"):
        "check_files_run (SENTINEL CKQUORUM)",
}


def guide_command(t, words, cmd):
    """(ok, why) for a guide command about Valkey or the walk; None for
    the commands test_chart.guide_command_ok already knows."""
    if words[0] == "helm" and VALKEY_REL in words:
        args = [_GUIDE.get(w, w) for w in words[1:]]
        if args[:2] == ["upgrade", "--install"]:
            args = ["install"] + args[2:] + ["--dry-run=client"]
        p = t.helm(*args)
        return p.returncode == 0, (p.stdout + p.stderr)[-800:]
    if words[0] == "helm" and words[1] == "upgrade" and \
            words[2] != "--install" and t.CHART_REL in words:
        # An upgrade of the relay: rendered offline with the same values.
        args = ["template"] + [_GUIDE.get(w, w) for w in words[2:]]
        p = t.helm(*args)
        return p.returncode == 0, p.stderr[-800:]
    if words[0] != "kubectl":
        return None
    ns = words[words.index("-n") + 1] if "-n" in words else "default"
    if words[1] == "exec":
        pod = words[words.index("-n") + 2] if "-n" in words else words[2]
        c = words[words.index("-c") + 1] if "-c" in words else ""
        rest = " ".join(words[words.index("--") + 2:])
        ok = (re.fullmatch(rf"{RELEASE}-[0-2]", pod) is not None
              and ns == t.NAMESPACE and (c, rest) in CLI_CHECKED)
        return ok, f"not a checked Valkey command: {c!r} {rest!r}"
    if words[1] == "rollout" and words[2] in ("status", "restart"):
        kind, name = words[3].split("/", 1)
        kinds = {"deploy": ("Deployment", t.CHART_REL),
                 "statefulset": ("StatefulSet", VALKEY_REL)}
        if kind not in kinds:
            return False, f"rollout of {kind}"
        want, chart = kinds[kind]
        args = ["template", name, chart, "--namespace", ns]
        if chart == t.CHART_REL:
            args += ["-f", os.path.join(t.TMP, "relay-values.yaml")]
        p = t.helm(*args)
        objs = [d for d in yaml.safe_load_all(p.stdout) if d] \
            if p.returncode == 0 else []
        return t.find(objs, want, name) is not None, f"no {want}/{name}"
    if words[1] == "get" and words[2] in ("statefulset", "pods", "pvc"):
        return (ns == t.NAMESPACE and (
            words[2] != "statefulset" or words[3] == RELEASE),
            "a Valkey object this recipe does not make")
    return None
