{{/*
The `web` values block: token.place's browser page mounted read-only at
web.mountPath and named to the relay by RELAY_WEB_DIR (docs/web.md). The
deployment includes each piece below with one line, so this block stays
in this file.
*/}}

{{/* Refusals for web values the schema cannot express. */}}
{{- define "relay.web.validate" -}}
{{- $w := .Values.web }}
{{- if $w.enabled }}
{{- if eq $w.source "image" }}
{{- if not $w.image.repository }}
{{- fail "web.source image needs web.image.repository: the image holding the page (e.g. token.place's own image) and web.image.path, the directory in it" }}
{{- end }}
{{- if not (or $w.image.tag $w.image.digest) }}
{{- fail "web.source image needs web.image.tag or web.image.digest: pin the image the page is copied from" }}
{{- end }}
{{- else if not $w.configMap.name }}
{{- if not (hasKey $w.configMap.files "index.html") }}
{{- fail "web.source configMap needs web.configMap.name (an existing ConfigMap) or web.configMap.files with an index.html" }}
{{- end }}
{{- end }}
{{- end }}
{{- end }}

{{/* The ConfigMap the chart makes, "" when none. */}}
{{- define "relay.web.chartConfigMap" -}}
{{- $w := .Values.web }}
{{- if and $w.enabled (ne $w.source "image") (not $w.configMap.name) }}
{{- printf "%s-web" (include "relay.fullname" .) }}
{{- end }}
{{- end }}

{{- define "relay.web.image" -}}
{{- $i := .Values.web.image }}
{{- if $i.digest }}
{{- printf "%s@%s" $i.repository $i.digest }}
{{- else }}
{{- printf "%s:%s" $i.repository $i.tag }}
{{- end }}
{{- end }}

{{/* Pod annotation: roll the pods when the chart-made ConfigMap changes. */}}
{{- define "relay.web.checksum" -}}
{{- if include "relay.web.chartConfigMap" . }}
checksum/web: {{ include (print $.Template.BasePath "/web-configmap.yaml") . | sha256sum }}
{{- end }}
{{- end }}

{{/* Relay settings of the page and of the routes it reads. */}}
{{- define "relay.web.env" -}}
{{- $w := .Values.web }}
{{- if $w.enabled }}
- name: RELAY_WEB_DIR
  value: {{ $w.mountPath | quote }}
- name: RELAY_WEB_MAX_BYTES
  value: {{ $w.maxBytes | int64 | quote }}
- name: RELAY_WEB_MAX_FILES
  value: {{ $w.maxFiles | int64 | quote }}
{{- end }}
- name: TOKENPLACE_FRONTEND_MODE
  value: {{ $w.frontendMode | quote }}
- name: RELAY_DIAGNOSTICS_DETAIL
  value: {{ $w.diagnosticsDetail | quote }}
- name: RELAY_DIAGNOSTICS_MAX_NODES
  value: {{ $w.diagnosticsMaxNodes | int64 | quote }}
- name: RELAY_MODELS_SOURCE
  value: {{ $w.modelsSource | quote }}
{{- end }}

{{- define "relay.web.volumeMounts" -}}
{{- if .Values.web.enabled }}
volumeMounts:
  - name: web
    mountPath: {{ .Values.web.mountPath }}
    readOnly: true
{{- end }}
{{- end }}

{{- define "relay.web.volumes" -}}
{{- $w := .Values.web }}
{{- if $w.enabled }}
volumes:
  - name: web
    {{- if eq $w.source "image" }}
    emptyDir:
      sizeLimit: {{ $w.image.sizeLimit }}
    {{- else }}
    configMap:
      name: {{ $w.configMap.name | default (include "relay.web.chartConfigMap" .) }}
    {{- end }}
{{- end }}
{{- end }}

{{/* source: image: copy web.image.path into the emptyDir before the relay starts. */}}
{{- define "relay.web.initContainers" -}}
{{- $w := .Values.web }}
{{- if and $w.enabled (eq $w.source "image") }}
initContainers:
  - name: web-files
    image: {{ include "relay.web.image" . | quote }}
    imagePullPolicy: {{ $w.image.pullPolicy }}
    command: ["cp", "-R", {{ printf "%s/." $w.image.path | quote }}, "/web/"]
    securityContext:
      {{- toYaml .Values.securityContext | nindent 6 }}
    resources:
      requests:
        cpu: 10m
        memory: 16Mi
      limits:
        cpu: 200m
        memory: 64Mi
    volumeMounts:
      - name: web
        mountPath: /web
{{- end }}
{{- end }}
