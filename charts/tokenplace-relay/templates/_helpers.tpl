{{/*
Names. The workload takes the release name itself (release "relay" gives
deploy/relay, svc/relay, ingress/relay), because the operator guide checks
those names; fullnameOverride replaces it.
*/}}
{{- define "relay.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "relay.fullname" -}}
{{- default .Release.Name .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "relay.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Labels. The relay's own objects carry component=relay and select on it, so
the gpu-server Service and the helm test pod (same release, other
components) never match the relay's Service, PDB or ServiceMonitor.
*/}}
{{- define "relay.instanceLabels" -}}
app.kubernetes.io/name: {{ include "relay.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "relay.selectorLabels" -}}
{{ include "relay.instanceLabels" . }}
app.kubernetes.io/component: relay
{{- end }}

{{- define "relay.commonLabels" -}}
helm.sh/chart: {{ include "relay.chart" . }}
{{ include "relay.instanceLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: tokenplace
{{- end }}

{{- define "relay.labels" -}}
{{ include "relay.commonLabels" . }}
app.kubernetes.io/component: relay
{{- end }}

{{- define "relay.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "relay.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/* repository:tag, or repository@digest when a digest is pinned. */}}
{{- define "relay.image" -}}
{{- if .Values.image.digest }}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}
{{- end }}

{{/* Name of the Secret holding the registration token(s), "" for none. */}}
{{- define "relay.tokenSecretName" -}}
{{- $t := .Values.registrationToken }}
{{- if $t.existingSecret }}
{{- $t.existingSecret }}
{{- else if or $t.value $t.additionalValues }}
{{- printf "%s-token" (include "relay.fullname" .) }}
{{- end }}
{{- end }}

{{/*
"true" when the broker state lives in a store all replicas share. The chart
cannot read an existing Secret, so with one only the operator's word
(state.shared: true) counts; without one the URL decides, and relay.validate
refuses a state.shared that contradicts it.
*/}}
{{- define "relay.sharedState" -}}
{{- $st := .Values.state }}
{{- if $st.existingSecret }}
{{- if eq (toString $st.shared) "true" }}true{{ end }}
{{- else if hasPrefix "redis://" $st.url }}true
{{- end }}
{{- end }}

{{/*
The live Deployment of this release as JSON ({} without a cluster: helm
template, --dry-run=client, a first install).
*/}}
{{- define "relay.liveDeployment" -}}
{{- lookup "apps/v1" "Deployment" .Release.Namespace (include "relay.fullname" .) | default dict | toJson }}
{{- end }}

{{/*
"true" when the live Deployment keeps its state in one process (memory://
or unix://): its annotation says so, or, from a chart version before the
annotation, its RELAY_STATE_URL is a literal memory:// or unix:// value.
*/}}
{{- define "relay.liveUnshared" -}}
{{- $live := include "relay.liveDeployment" . | fromJson }}
{{- if $live }}
{{- $ann := dig "metadata" "annotations" "tokenplace.io/shared-state" "" $live }}
{{- if eq $ann "false" }}true
{{- else if not $ann }}
{{- range (dig "spec" "template" "spec" "containers" list $live) }}
{{- if eq .name "relay" }}
{{- range .env }}
{{- if and (eq .name "RELAY_STATE_URL") (hasKey . "value") }}
{{- if or (eq .value "memory://") (hasPrefix "unix://" .value) }}true{{ end }}
{{- end }}
{{- end }}
{{- end }}
{{- end }}
{{- end }}
{{- end }}
{{- end }}

{{/*
The Deployment strategy. Not shared: Recreate, always (RollingUpdate is
refused in relay.validate). Shared: updateStrategy, default RollingUpdate,
except in the revision that moves a live release off memory://, which is
Recreate: the old in-memory pod must be gone before a shared pod serves,
or clients and nodes would see two queues.
*/}}
{{- define "relay.strategy" -}}
{{- if not (include "relay.sharedState" .) }}Recreate
{{- else if include "relay.liveUnshared" . }}Recreate
{{- else }}{{ .Values.updateStrategy | default "RollingUpdate" }}
{{- end }}
{{- end }}

{{/*
The GPU workstation's Service: one per release, so two releases can live in
one namespace.
*/}}
{{- define "relay.gpuServiceName" -}}
{{- .Values.gpuExternalName.serviceName | default (printf "%s-gpu-server" (include "relay.fullname" . | trunc 52 | trimSuffix "-")) }}
{{- end }}

{{/* The upstream URL: env.upstream.url, or the GPU Service on its port. */}}
{{- define "relay.upstreamURL" -}}
{{- .Values.env.upstream.url | default (printf "http://%s:%d" (include "relay.gpuServiceName" .) (.Values.gpuExternalName.port | int)) }}
{{- end }}

{{/* "true" when the Ingress serves TLS (object form enabled, or a non-empty list). */}}
{{- define "relay.ingressTLS" -}}
{{- $tls := .Values.ingress.tls }}
{{- if kindIs "slice" $tls }}
{{- if $tls }}true{{ end }}
{{- else if $tls.enabled }}true
{{- end }}
{{- end }}

{{/*
The port of the shared state store for the NetworkPolicy: networkPolicy.state.port
when set, else the port of state.url (after any user:password@, before the
/db), else 6379.
*/}}
{{- define "relay.statePort" -}}
{{- $p := .Values.networkPolicy.state.port | int -}}
{{- if gt $p 0 -}}
{{- $p -}}
{{- else -}}
{{- $hostport := regexReplaceAll "^.*@" (regexReplaceAll "/[^@]*$" (trimPrefix "redis://" .Values.state.url) "") "" -}}
{{- $m := regexFind ":[0-9]+$" $hostport -}}
{{- if $m }}{{ trimPrefix ":" $m }}{{ else }}6379{{ end -}}
{{- end -}}
{{- end }}

{{/* Seconds Kubernetes grants between SIGTERM and SIGKILL. */}}
{{- define "relay.terminationGrace" -}}
{{- $need := add .Values.env.gracefulTimeout .Values.preStopSleepSeconds }}
{{- if kindIs "invalid" .Values.terminationGracePeriodSeconds }}
{{- add $need 10 }}
{{- else }}
{{- .Values.terminationGracePeriodSeconds | int64 }}
{{- end }}
{{- end }}

{{/*
Checks that need more than one value at a time (the schema checks single
values). Each failure names the value to change.
*/}}
{{- define "relay.validate" -}}
{{- $v := .Values }}
{{- $g := $v.gpuExternalName }}
{{- if and $g.headless.enabled (not $g.headless.ip) }}
{{- fail "gpuExternalName.headless.ip is required when gpuExternalName.headless.enabled is true: set it to the GPU workstation's IPv4 address" }}
{{- end }}
{{- if and (not $g.host) (not $g.headless.enabled) }}
{{- fail "gpuExternalName.host is required: set it to the DNS name of the GPU workstation (e.g. --set gpuExternalName.host=gpu-box.example.com), or, for a workstation known by IP only, set gpuExternalName.headless.enabled=true and gpuExternalName.headless.ip" }}
{{- end }}
{{- $gpuSvc := include "relay.gpuServiceName" . }}
{{- if and (regexMatch "^https?://gpu-server([:/].*)?$" $v.env.upstream.url) (ne $gpuSvc "gpu-server") }}
{{- fail (printf "env.upstream.url names the Service gpu-server, which this chart no longer makes (the GPU Service is %s, one per release): leave env.upstream.url empty (it then points at %s), or set gpuExternalName.serviceName=gpu-server to keep the old name" $gpuSvc $gpuSvc) }}
{{- end }}
{{- $m := regexFindAll (printf "^https?://%s(:[0-9]+)?(/.*)?$" (regexQuoteMeta $gpuSvc)) $v.env.upstream.url 1 }}
{{- if $m }}
{{- $port := trimPrefix ":" (regexFind ":[0-9]+" (trimPrefix "http://" (trimPrefix "https://" $v.env.upstream.url))) }}
{{- if not $port }}
{{- $port = ternary "443" "80" (hasPrefix "https://" $v.env.upstream.url) }}
{{- end }}
{{- if ne ($port | int) ($v.gpuExternalName.port | int) }}
{{- fail (printf "env.upstream.url uses port %s of the %s Service but gpuExternalName.port is %d: make them match" $port $gpuSvc ($v.gpuExternalName.port | int)) }}
{{- end }}
{{- end }}
{{- $st := $v.state }}
{{- if and (not $st.existingSecret) (not (kindIs "invalid" $st.shared)) }}
{{- $urlShared := hasPrefix "redis://" $st.url }}
{{- if ne (toString $st.shared) (toString $urlShared) }}
{{- fail (printf "state.shared is %v but state.url %s is %s: drop state.shared (it is derived from the URL) or make them agree" $st.shared $st.url (ternary "a shared store" "not shared (one process's memory)" $urlShared)) }}
{{- end }}
{{- end }}
{{- $shared := include "relay.sharedState" . }}
{{- $how := "set state.url to redis://host:port/db, or, with state.existingSecret holding a redis:// URL, set state.shared=true; in-memory state (memory://) cannot be split across replicas" }}
{{- if and $st.existingSecret (not $shared) }}
{{- $how = printf "state.existingSecret %s hides the URL from the chart: set state.shared=true if it holds a redis:// URL; in-memory state (memory://) cannot be split across replicas" $st.existingSecret }}
{{- end }}
{{- if and $v.autoscaling.enabled (not $shared) }}
{{- fail (printf "autoscaling.enabled needs a shared state store: %s" $how) }}
{{- end }}
{{- if and (eq $v.updateStrategy "RollingUpdate") (not $shared) }}
{{- fail (printf "updateStrategy RollingUpdate needs a shared state store: during a rollout the old and the new pod would each hold a separate in-memory queue (jobs lost, clients and nodes split); use Recreate (the default) or %s" $how) }}
{{- end }}
{{- if and (gt ($v.replicaCount | int) 1) (not $shared) }}
{{- fail (printf "replicaCount %d needs a shared state store: %s" ($v.replicaCount | int) $how) }}
{{- end }}
{{- if and $v.autoscaling.enabled (gt ($v.autoscaling.minReplicas | int) ($v.autoscaling.maxReplicas | int)) }}
{{- fail "autoscaling.minReplicas must not exceed autoscaling.maxReplicas" }}
{{- end }}
{{- if and $v.autoscaling.enabled (kindIs "invalid" $v.autoscaling.targetCPUUtilizationPercentage) (kindIs "invalid" $v.autoscaling.targetMemoryUtilizationPercentage) }}
{{- fail "autoscaling.enabled needs autoscaling.targetCPUUtilizationPercentage or autoscaling.targetMemoryUtilizationPercentage" }}
{{- end }}
{{- if and $v.registrationToken.existingSecret (or $v.registrationToken.value $v.registrationToken.additionalValues) }}
{{- fail "registrationToken: set either existingSecret or value/additionalValues, not both" }}
{{- end }}
{{- if and (gt ($v.preStopSleepSeconds | int) 0) (semverCompare "<1.30-0" .Capabilities.KubeVersion.Version) }}
{{- fail (printf "preStopSleepSeconds needs Kubernetes 1.30 or later (the preStop sleep action); this cluster is %s: set preStopSleepSeconds=0" .Capabilities.KubeVersion.Version) }}
{{- end }}
{{- if and $v.state.passwordSecret.name $v.state.existingSecret }}
{{- fail "state.passwordSecret and state.existingSecret: the URL Secret carries its own password; set one of them" }}
{{- end }}
{{- range $v.env.extra }}
{{- if has .name (list "RELAY_STATE_URL" "RELAY_STATE_PASSWORD" "RELAY_STATE_OUTAGE_READY" "RELAY_HOST" "RELAY_PORT") }}
{{- fail (printf "env.extra sets %s, which the chart sets itself: use its value (state.url, state.passwordSecret, env.stateOutageReady, containerPort)" .name) }}
{{- end }}
{{- end }}
{{- $need := add $v.env.gracefulTimeout $v.preStopSleepSeconds }}
{{- if le ((include "relay.terminationGrace" .) | int) ($need | int) }}
{{- fail (printf "terminationGracePeriodSeconds (%s) must be greater than env.gracefulTimeout + preStopSleepSeconds (%d), or the relay is killed while it drains" (include "relay.terminationGrace" .) ($need | int)) }}
{{- end }}
{{- if and $v.ingress.enabled (not $v.ingress.hosts) }}
{{- fail "ingress.enabled needs at least one entry in ingress.hosts (e.g. --set ingress.hosts[0].host=relay.example.com)" }}
{{- end }}
{{- $tls := $v.ingress.tls }}
{{- if and $v.ingress.enabled (kindIs "map" $tls) }}
{{- if and $tls.enabled (not (or $tls.clusterIssuer $tls.issuer)) }}
{{- fail "ingress.tls.enabled needs a cert-manager issuer: set ingress.tls.clusterIssuer or ingress.tls.issuer" }}
{{- end }}
{{- end }}
{{- if and $v.ingress.enabled (kindIs "slice" $tls) }}
{{- $names := list }}
{{- range $v.ingress.hosts }}{{ $names = append $names .host }}{{ end }}
{{- range $i, $e := $tls }}
{{- range $e.hosts }}
{{- if not (has . $names) }}
{{- fail (printf "ingress.tls[%d].hosts names %s, which is not in ingress.hosts: the Ingress would hold a certificate for a host it does not route" $i .) }}
{{- end }}
{{- end }}
{{- end }}
{{- end }}
{{- if and $v.networkPolicy.enabled (not $v.networkPolicy.gpuServer.cidrs) }}
{{- fail "networkPolicy.enabled needs networkPolicy.gpuServer.cidrs: the GPU workstation's address as CIDRs (e.g. 203.0.113.10/32), because a NetworkPolicy cannot match DNS names" }}
{{- end }}
{{- if and $v.podDisruptionBudget.enabled (not (kindIs "invalid" $v.podDisruptionBudget.maxUnavailable)) (not (kindIs "invalid" $v.podDisruptionBudget.minAvailable)) }}
{{- fail "podDisruptionBudget: set either maxUnavailable or minAvailable (the other to null), not both" }}
{{- end }}
{{- end }}
