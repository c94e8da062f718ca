{{- define "pgvalve.name" -}}
{{- .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "pgvalve.fullname" -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "pgvalve.labels" -}}
app.kubernetes.io/name: {{ include "pgvalve.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
{{- end -}}

{{- define "pgvalve.selector" -}}
app.kubernetes.io/name: {{ include "pgvalve.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- /* Each instance's share of the server budget. */ -}}
{{- define "pgvalve.maxDBConnections" -}}
{{- div (int .Values.serverBudget) (max 1 (int .Values.replicaCount)) -}}
{{- end -}}

{{- /* The headless Service that gives each pod its DNS name, for [peers]. */ -}}
{{- define "pgvalve.peersService" -}}
{{- printf "%s-peers" (include "pgvalve.fullname" .) | trunc 63 | trimSuffix "-" -}}
{{- end -}}
