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

{{/* "true" when the broker state lives in a store all replicas share. */}}
{{- define "relay.sharedState" -}}
{{- if or .Values.state.existingSecret (hasPrefix "redis://" .Values.state.url) }}true{{ end }}
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
{{- if not $v.gpuExternalName.host }}
{{- fail "gpuExternalName.host is required: set it to the DNS name of the GPU workstation (e.g. --set gpuExternalName.host=gpu-box.example.com)" }}
{{- end }}
{{- if and $v.gpuExternalName.headless.enabled (not $v.gpuExternalName.headless.ip) }}
{{- fail "gpuExternalName.headless.ip is required when gpuExternalName.headless.enabled is true: set it to the GPU workstation's IPv4 address" }}
{{- end }}
{{- $m := regexFindAll "^https?://gpu-server(:[0-9]+)?(/.*)?$" $v.env.upstream.url 1 }}
{{- if $m }}
{{- $port := trimPrefix ":" (regexFind ":[0-9]+" (trimPrefix "http://" (trimPrefix "https://" $v.env.upstream.url))) }}
{{- if not $port }}
{{- $port = ternary "443" "80" (hasPrefix "https://" $v.env.upstream.url) }}
{{- end }}
{{- if ne ($port | int) ($v.gpuExternalName.port | int) }}
{{- fail (printf "env.upstream.url uses port %s of the gpu-server Service but gpuExternalName.port is %d: make them match" $port ($v.gpuExternalName.port | int)) }}
{{- end }}
{{- end }}
{{- $shared := include "relay.sharedState" . }}
{{- if and $v.autoscaling.enabled (not $shared) }}
{{- fail "autoscaling.enabled needs a shared state store: set state.url to redis://host:port/db (or state.existingSecret); in-memory state (memory://) cannot be split across replicas" }}
{{- end }}
{{- if and (gt ($v.replicaCount | int) 1) (not $shared) }}
{{- fail (printf "replicaCount %d needs a shared state store: set state.url to redis://host:port/db (or state.existingSecret); in-memory state (memory://) cannot be split across replicas" ($v.replicaCount | int)) }}
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
{{- $need := add $v.env.gracefulTimeout $v.preStopSleepSeconds }}
{{- if le ((include "relay.terminationGrace" .) | int) ($need | int) }}
{{- fail (printf "terminationGracePeriodSeconds (%s) must be greater than env.gracefulTimeout + preStopSleepSeconds (%d), or the relay is killed while it drains" (include "relay.terminationGrace" .) ($need | int)) }}
{{- end }}
{{- if and $v.ingress.enabled (not $v.ingress.hosts) }}
{{- fail "ingress.enabled needs at least one entry in ingress.hosts (e.g. --set ingress.hosts[0].host=relay.example.com)" }}
{{- end }}
{{- if and $v.ingress.enabled $v.ingress.tls.enabled (not (or $v.ingress.tls.clusterIssuer $v.ingress.tls.issuer)) }}
{{- fail "ingress.tls.enabled needs a cert-manager issuer: set ingress.tls.clusterIssuer or ingress.tls.issuer" }}
{{- end }}
{{- if and $v.networkPolicy.enabled (not $v.networkPolicy.gpuServer.cidrs) }}
{{- fail "networkPolicy.enabled needs networkPolicy.gpuServer.cidrs: the GPU workstation's address as CIDRs (e.g. 203.0.113.10/32), because a NetworkPolicy cannot match DNS names" }}
{{- end }}
{{- if and $v.podDisruptionBudget.enabled (not (kindIs "invalid" $v.podDisruptionBudget.maxUnavailable)) (not (kindIs "invalid" $v.podDisruptionBudget.minAvailable)) }}
{{- fail "podDisruptionBudget: set either maxUnavailable or minAvailable (the other to null), not both" }}
{{- end }}
{{- end }}
