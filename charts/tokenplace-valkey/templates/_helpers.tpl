{{/* Names: the release name itself (release "valkey": sts/valkey). */}}
{{- define "valkey.fullname" -}}
{{- .Release.Name | trunc 50 | trimSuffix "-" }}
{{- end }}

{{- define "valkey.selectorLabels" -}}
app.kubernetes.io/name: valkey
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "valkey.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{ include "valkey.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: tokenplace
{{- end }}

{{- define "valkey.image" -}}
{{- if .Values.image.digest }}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" .Values.image.repository .Values.image.tag }}
{{- end }}
{{- end }}

{{- define "valkey.secretName" -}}
{{- .Values.auth.existingSecret | default (include "valkey.fullname" .) }}
{{- end }}

{{- define "valkey.secretKey" -}}
{{- if .Values.auth.existingSecret }}{{ .Values.auth.existingSecretKey }}{{ else }}password{{ end }}
{{- end }}

{{/* <release>-headless.<ns>.svc.<domain>: the pods' DNS names end in it. */}}
{{- define "valkey.headlessDomain" -}}
{{- printf "%s-headless.%s.svc.%s" (include "valkey.fullname" .) .Release.Namespace .Values.clusterDomain }}
{{- end }}

{{- define "valkey.validate" -}}
{{- if lt (.Values.replicas | int) 3 }}
{{- fail "replicas must be at least 3: Sentinel needs a quorum of pods on different nodes" }}
{{- end }}
{{- if gt (.Values.sentinel.quorum | int) (.Values.replicas | int) }}
{{- fail "sentinel.quorum must not exceed replicas (one Sentinel per pod)" }}
{{- end }}
{{- if ne .Values.config.maxmemoryPolicy "noeviction" }}
{{- fail "config.maxmemoryPolicy must be noeviction: an evicting store silently drops the relay's queued jobs and answers" }}
{{- end }}
{{- end }}
