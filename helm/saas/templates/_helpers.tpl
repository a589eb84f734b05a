{{/* vim: set filetype=mustache: */}}

{{- define "saas.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/*
Fully qualified app name, truncated so that suffixed names ("-migrations") stay <= 63 chars.
*/}}
{{- define "saas.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 48 | trimSuffix "-" -}}
{{- else -}}
{{- $name := default .Chart.Name .Values.nameOverride -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 48 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 48 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{- define "saas.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "saas.labels" -}}
helm.sh/chart: {{ include "saas.chart" . }}
{{ include "saas.selectorLabels" . }}
app.kubernetes.io/version: {{ .Values.image.tag | trunc 63 | trimSuffix "-" | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: {{ include "saas.name" . }}
{{- end -}}

{{- define "saas.selectorLabels" -}}
app.kubernetes.io/name: {{ include "saas.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{/* Labels of one component: (dict "ctx" $ "component" "api") */}}
{{- define "saas.componentLabels" -}}
{{ include "saas.labels" .ctx }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{- define "saas.componentSelectorLabels" -}}
{{ include "saas.selectorLabels" .ctx }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{- define "saas.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "saas.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{/*
The migration hook runs before the release's own resources exist (pre-install), so it
cannot use the chart's ServiceAccount on a first install: it gets a hook ServiceAccount,
or the user-provided one when serviceAccount.create is false.
*/}}
{{- define "saas.migrationServiceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- printf "%s-migrations" (include "saas.fullname" .) -}}
{{- else -}}
{{- include "saas.serviceAccountName" . -}}
{{- end -}}
{{- end -}}

{{- define "saas.image" -}}
{{- if .Values.image.digest -}}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest -}}
{{- else -}}
{{- printf "%s:%s" .Values.image.repository .Values.image.tag -}}
{{- end -}}
{{- end -}}

{{- define "saas.configMapName" -}}
{{- printf "%s-config" (include "saas.fullname" .) -}}
{{- end -}}

{{/* The Secret read by the api and worker: the existing one, or the chart's. */}}
{{- define "saas.secretName" -}}
{{- if .Values.existingSecret -}}
{{- .Values.existingSecret -}}
{{- else -}}
{{- include "saas.fullname" . -}}
{{- end -}}
{{- end -}}

{{/*
The Secret read by the migration hook. With existingSecret it is that Secret (it exists
before the release). Otherwise it is a hook Secret of lower hook weight than the Job:
the chart's regular Secret does not exist yet during pre-install, and during pre-upgrade
it still holds the previous release's values.
*/}}
{{- define "saas.migrationSecretName" -}}
{{- if .Values.existingSecret -}}
{{- .Values.existingSecret -}}
{{- else -}}
{{- printf "%s-migrations" (include "saas.fullname" .) -}}
{{- end -}}
{{- end -}}

{{/* Names of the secret settings: never rendered as plain env values or ConfigMap data. */}}
{{- define "saas.secretEnvNames" -}}
DATABASE_URL APP_DATABASE_URL REDIS_URL JWT_SECRET UNSUBSCRIBE_SECRET SMTP_PASSWORD METRICS_TOKEN
{{- end -}}

{{/*
Non-secret settings as a YAML map (ConfigMap data; inline env of the migration hook).
*/}}
{{- define "saas.configData" -}}
{{- $c := .Values.config -}}
ENVIRONMENT: {{ $c.environment | quote }}
LOG_LEVEL: {{ $c.logLevel | quote }}
ALLOWED_ORIGINS: {{ join "," $c.allowedOrigins | quote }}
HOST: "0.0.0.0"
PORT: "8000"
GRACEFUL_SHUTDOWN_SECONDS: {{ .Values.api.gracefulShutdownSeconds | toString | quote }}
{{- if $c.smtp.host }}
SMTP_HOST: {{ $c.smtp.host | quote }}
{{- end }}
SMTP_PORT: {{ $c.smtp.port | toString | quote }}
{{- if $c.smtp.username }}
SMTP_USERNAME: {{ $c.smtp.username | quote }}
{{- end }}
SMTP_STARTTLS: {{ ternary "true" "false" $c.smtp.starttls | quote }}
{{- if $c.otelExporterOtlpEndpoint }}
OTEL_EXPORTER_OTLP_ENDPOINT: {{ $c.otelExporterOtlpEndpoint | quote }}
{{- end }}
{{- $secretNames := splitList " " (include "saas.secretEnvNames" .) }}
{{- range $k, $v := $c.extraEnv }}
{{- if has $k $secretNames }}
{{- fail (printf "config.extraEnv.%s is a secret setting: put it in the Secret (secrets.* or existingSecret)" $k) }}
{{- end }}
{{ $k }}: {{ $v | toString | quote }}
{{- end }}
{{- end -}}

{{/*
A generated secret value: the value from values, else the one already stored in the
release's Secret (kept across upgrades), else 64 random characters.
(dict "ctx" $ "key" "JWT_SECRET" "value" .Values.secrets.jwtSecret)
*/}}
{{- define "saas.generatedSecret" -}}
{{- if .value -}}
{{- .value -}}
{{- else -}}
{{- $existing := lookup "v1" "Secret" .ctx.Release.Namespace (include "saas.fullname" .ctx) -}}
{{- if and $existing $existing.data (hasKey $existing.data .key) -}}
{{- index $existing.data .key | b64dec -}}
{{- else -}}
{{- randAlphaNum 64 -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{/* Env entries of the secret settings for the api and worker (never plain values). */}}
{{- define "saas.secretEnv" -}}
{{- $secret := include "saas.secretName" . -}}
{{- range list "APP_DATABASE_URL" "REDIS_URL" "JWT_SECRET" "UNSUBSCRIBE_SECRET" }}
- name: {{ . }}
  valueFrom:
    secretKeyRef:
      name: {{ $secret }}
      key: {{ . }}
{{- end }}
- name: SMTP_PASSWORD
  valueFrom:
    secretKeyRef:
      name: {{ $secret }}
      key: SMTP_PASSWORD
      optional: true
- name: METRICS_TOKEN
  valueFrom:
    secretKeyRef:
      name: {{ $secret }}
      key: METRICS_TOKEN
      optional: true
{{- end -}}

{{/*
Pod annotations: checksums roll the pods when the config or the chart's Secret changes,
then the component's annotations, then the global podAnnotations.
(dict "ctx" $ "extra" (dict ...))
*/}}
{{- define "saas.podAnnotations" -}}
{{- $a := dict "checksum/config" (include "saas.configData" .ctx | sha256sum) -}}
{{- if not .ctx.Values.existingSecret -}}
{{- $_ := set $a "checksum/secret" (include (print .ctx.Template.BasePath "/secret.yaml") .ctx | sha256sum) -}}
{{- end -}}
{{- $a = merge $a (.extra | default dict) .ctx.Values.podAnnotations -}}
{{ toYaml $a }}
{{- end -}}

{{/* Default soft spread over nodes and zones, unless the user gave constraints. */}}
{{- define "saas.topologySpread" -}}
{{- if .constraints -}}
{{ toYaml .constraints }}
{{- else -}}
- maxSkew: 1
  topologyKey: kubernetes.io/hostname
  whenUnsatisfiable: ScheduleAnyway
  labelSelector:
    matchLabels:
      {{- include "saas.componentSelectorLabels" . | nindent 6 }}
- maxSkew: 1
  topologyKey: topology.kubernetes.io/zone
  whenUnsatisfiable: ScheduleAnyway
  labelSelector:
    matchLabels:
      {{- include "saas.componentSelectorLabels" . | nindent 6 }}
{{- end -}}
{{- end -}}

{{/* Template-time checks that JSON Schema cannot express. */}}
{{- define "saas.validate" -}}
{{- $v := .Values -}}
{{- if $v.existingSecret -}}
{{- range $k, $val := $v.secrets -}}
{{- if $val -}}
{{- fail (printf "secrets.%s is set together with existingSecret %q: put it in that Secret instead" $k $v.existingSecret) -}}
{{- end -}}
{{- end -}}
{{- end -}}
{{- range $component := list "api" "worker" -}}
{{- $as := (index $v $component).autoscaling -}}
{{- if and $as.enabled (lt (int $as.maxReplicas) (int $as.minReplicas)) -}}
{{- fail (printf "%s.autoscaling.maxReplicas (%v) must be >= %s.autoscaling.minReplicas (%v)" $component $as.maxReplicas $component $as.minReplicas) -}}
{{- end -}}
{{- end -}}
{{- if and $v.ingress.enabled (not $v.ingress.hosts) -}}
{{- fail "ingress.enabled is true but ingress.hosts is empty" -}}
{{- end -}}
{{- end -}}
