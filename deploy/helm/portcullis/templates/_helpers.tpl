{{/* Built-ins only: these render the same under Helm and under Go's text/template. */}}
{{- define "portcullis.fullname" -}}{{ printf "%s-%s" .Release.Name .Chart.Name }}{{- end -}}
{{- define "portcullis.selector" -}}{app.kubernetes.io/name: {{ .Chart.Name }}, app.kubernetes.io/instance: {{ .Release.Name }}}{{- end -}}
{{- define "portcullis.labels" -}}{app.kubernetes.io/name: {{ .Chart.Name }}, app.kubernetes.io/instance: {{ .Release.Name }}, app.kubernetes.io/version: {{ printf "%q" .Chart.AppVersion }}, app.kubernetes.io/managed-by: {{ .Release.Service }}, helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}}{{- end -}}
{{- define "portcullis.secretName" -}}{{ if .Values.existingSecret }}{{ .Values.existingSecret }}{{ else }}{{ template "portcullis.fullname" . }}{{ end }}{{- end -}}
