{{- define "sts.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "sts.selectorLabels" -}}
app.kubernetes.io/name: {{ .Chart.Name }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "sts.labels" -}}
{{ include "sts.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end -}}

{{- define "sts.tls" -}}
{{- if .Values.secrets.tls.name }}true{{ end -}}
{{- end -}}

{{- define "sts.scheme" -}}
{{- if include "sts.tls" . }}HTTPS{{ else }}HTTP{{ end -}}
{{- end -}}

{{- define "sts.port" -}}
{{- if include "sts.tls" . }}19443{{ else }}19090{{ end -}}
{{- end -}}
