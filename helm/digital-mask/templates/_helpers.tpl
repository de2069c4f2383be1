{{/* vim: set filetype=mustache: */}}

{{/*
Chart name, truncated to 63 characters (DNS label limit).
*/}}
{{- define "digital-mask.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/*
Fully qualified app name: <release>-<chart>, or the release name when it already contains the chart name.
*/}}
{{- define "digital-mask.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- $name := default .Chart.Name .Values.nameOverride -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{/*
Name of a component's resources: <fullname>-<component>. Usage: include "digital-mask.componentName" (dict "root" $ "component" "api")
*/}}
{{- define "digital-mask.componentName" -}}
{{- printf "%s-%s" (include "digital-mask.fullname" .root | trunc 50 | trimSuffix "-") .component -}}
{{- end -}}

{{- define "digital-mask.namespace" -}}
{{- default .Release.Namespace .Values.namespaceOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "digital-mask.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/*
Selector labels. Usage: include "digital-mask.selectorLabels" (dict "root" $ "component" "api")
*/}}
{{- define "digital-mask.selectorLabels" -}}
app.kubernetes.io/name: {{ include "digital-mask.name" .root }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
{{- if .component }}
app.kubernetes.io/component: {{ .component }}
{{- end }}
{{- end -}}

{{/*
Standard labels. Usage: include "digital-mask.labels" (dict "root" $ "component" "api")
*/}}
{{- define "digital-mask.labels" -}}
helm.sh/chart: {{ include "digital-mask.chart" .root }}
{{ include "digital-mask.selectorLabels" . }}
app.kubernetes.io/version: {{ .root.Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .root.Release.Service }}
app.kubernetes.io/part-of: digital-mask
{{- with .root.Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end -}}

{{/*
metadata.annotations from commonAnnotations plus extra ones. Usage: include "digital-mask.annotations" (dict "root" $ "extra" $dict)
*/}}
{{- define "digital-mask.annotations" -}}
{{- $all := merge (deepCopy (default dict .extra)) (deepCopy (default dict .root.Values.commonAnnotations)) -}}
{{- if $all }}
annotations:
  {{- toYaml $all | nindent 2 }}
{{- end }}
{{- end -}}

{{/*
Image reference. Usage: include "digital-mask.image" (dict "image" .Values.image "root" $)
*/}}
{{- define "digital-mask.image" -}}
{{- $registry := default .image.registry .root.Values.global.imageRegistry -}}
{{- $repository := .image.repository -}}
{{- $ref := ternary (printf "%s/%s" $registry $repository) $repository (ne $registry "") -}}
{{- if .image.digest -}}
{{- printf "%s@%s" $ref .image.digest -}}
{{- else -}}
{{- printf "%s:%s" $ref (default .root.Chart.AppVersion .image.tag | toString) -}}
{{- end -}}
{{- end -}}

{{- define "digital-mask.imagePullSecrets" -}}
{{- with .Values.global.imagePullSecrets }}
imagePullSecrets:
{{- range . }}
  - name: {{ . }}
{{- end }}
{{- end }}
{{- end -}}

{{- define "digital-mask.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "digital-mask.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{/*
A value as a ConfigMap string. YAML numbers may arrive as float64 (2147483648 -> 2.147483648e+09):
whole numbers are printed as integers.
*/}}
{{- define "digital-mask.scalar" -}}
{{- $v := . -}}
{{- if kindIs "float64" $v -}}
{{- if eq $v (float64 (int64 $v)) -}}{{- int64 $v -}}{{- else -}}{{- $v -}}{{- end -}}
{{- else if or (kindIs "map" $v) (kindIs "slice" $v) -}}
{{- $v | toJson -}}
{{- else -}}
{{- $v | toString -}}
{{- end -}}
{{- end -}}

{{- define "digital-mask.podSecurityContext" -}}
{{- if .Values.podSecurityContext.enabled }}
securityContext:
  {{- omit .Values.podSecurityContext "enabled" | toYaml | nindent 2 }}
{{- end }}
{{- end -}}

{{- define "digital-mask.containerSecurityContext" -}}
{{- if .Values.containerSecurityContext.enabled }}
securityContext:
  {{- omit .Values.containerSecurityContext "enabled" | toYaml | nindent 2 }}
{{- end }}
{{- end -}}

{{/* ---------------------------------------------------------------------------------------------
Secrets. The chart-managed Secret <fullname> holds whatever is not taken from an existing Secret.
--------------------------------------------------------------------------------------------- */}}

{{- define "digital-mask.secretName" -}}
{{- include "digital-mask.fullname" . -}}
{{- end -}}

{{/* Name of the hook Secret the migration Job reads (hooks run before the release's own Secret exists). */}}
{{- define "digital-mask.migrationSecretName" -}}
{{- include "digital-mask.componentName" (dict "root" . "component" "migrate") -}}
{{- end -}}

{{- define "digital-mask.auth.secretName" -}}
{{- default (include "digital-mask.secretName" .) .Values.auth.existingSecret -}}
{{- end -}}

{{- define "digital-mask.auth.hmacKeyKey" -}}
{{- ternary .Values.auth.existingSecretHmacKeyKey "hmac-key" (ne .Values.auth.existingSecret "") -}}
{{- end -}}

{{- define "digital-mask.auth.sseCKeyKey" -}}
{{- ternary .Values.auth.existingSecretSseCKeyKey "sse-c-key" (ne .Values.auth.existingSecret "") -}}
{{- end -}}

{{/* true when the database password comes from some Secret (chart-managed or existing). */}}
{{- define "digital-mask.database.hasPassword" -}}
{{- if or .Values.externalDatabase.existingSecret .Values.externalDatabase.password -}}true{{- end -}}
{{- end -}}

{{- define "digital-mask.database.passwordKey" -}}
{{- ternary .Values.externalDatabase.existingSecretPasswordKey "database-password" (ne .Values.externalDatabase.existingSecret "") -}}
{{- end -}}

{{- define "digital-mask.redis.hasPassword" -}}
{{- if or .Values.externalRedis.existingSecret .Values.externalRedis.password -}}true{{- end -}}
{{- end -}}

{{- define "digital-mask.redis.secretName" -}}
{{- default (include "digital-mask.secretName" .) .Values.externalRedis.existingSecret -}}
{{- end -}}

{{- define "digital-mask.redis.passwordKey" -}}
{{- ternary .Values.externalRedis.existingSecretPasswordKey "redis-password" (ne .Values.externalRedis.existingSecret "") -}}
{{- end -}}

{{- define "digital-mask.s3.secretName" -}}
{{- default (include "digital-mask.secretName" .) .Values.externalS3.existingSecret -}}
{{- end -}}

{{- define "digital-mask.s3.accessKeyKey" -}}
{{- ternary .Values.externalS3.existingSecretAccessKeyKey "s3-access-key" (ne .Values.externalS3.existingSecret "") -}}
{{- end -}}

{{- define "digital-mask.s3.secretKeyKey" -}}
{{- ternary .Values.externalS3.existingSecretSecretKeyKey "s3-secret-key" (ne .Values.externalS3.existingSecret "") -}}
{{- end -}}

{{/* Port of the S3 endpoint (host:port, else 443/80 by externalS3.secure). */}}
{{- define "digital-mask.s3.port" -}}
{{- $parts := splitList ":" .Values.externalS3.endpoint -}}
{{- if gt (len $parts) 1 -}}
{{- last $parts -}}
{{- else -}}
{{- ternary "443" "80" .Values.externalS3.secure -}}
{{- end -}}
{{- end -}}

{{/*
Environment of DMASK_DATABASE_URL. The password reaches the URL through Kubernetes' $(VAR)
expansion, so it never appears in a ConfigMap or in the pod spec.
Usage: include "digital-mask.env.database" (dict "root" $ "secretName" <chart-managed secret to use>)
*/}}
{{- define "digital-mask.env.database" -}}
{{- $db := .root.Values.externalDatabase -}}
{{- $secret := default .secretName $db.existingSecret -}}
{{- if and $db.existingSecret $db.existingSecretUrlKey }}
- name: DMASK_DATABASE_URL
  valueFrom:
    secretKeyRef:
      name: {{ $db.existingSecret }}
      key: {{ $db.existingSecretUrlKey }}
{{- else }}
{{- $query := ternary (printf "?%s" $db.query) "" (ne $db.query "") }}
{{- if include "digital-mask.database.hasPassword" .root }}
- name: DATABASE_PASSWORD
  valueFrom:
    secretKeyRef:
      name: {{ $secret }}
      key: {{ include "digital-mask.database.passwordKey" .root }}
- name: DMASK_DATABASE_URL
  value: {{ printf "%s://%s:$(DATABASE_PASSWORD)@%s:%s/%s%s" $db.driver $db.user $db.host (include "digital-mask.scalar" $db.port) $db.database $query | quote }}
{{- else }}
- name: DMASK_DATABASE_URL
  value: {{ printf "%s://%s@%s:%s/%s%s" $db.driver $db.user $db.host (include "digital-mask.scalar" $db.port) $db.database $query | quote }}
{{- end }}
{{- end }}
{{- end -}}

{{/* Environment of DMASK_BROKER_URL (Celery on Redis). Usage: include "digital-mask.env.broker" $ */}}
{{- define "digital-mask.env.broker" -}}
{{- $r := .Values.externalRedis -}}
{{- $scheme := ternary "rediss" "redis" $r.tls -}}
{{- $query := ternary "?ssl_cert_reqs=required" "" $r.tls -}}
{{- $hostPath := printf "%s:%s/%s%s" $r.host (include "digital-mask.scalar" $r.port) (include "digital-mask.scalar" $r.database) $query -}}
{{- if include "digital-mask.redis.hasPassword" . }}
- name: REDIS_PASSWORD
  valueFrom:
    secretKeyRef:
      name: {{ include "digital-mask.redis.secretName" . }}
      key: {{ include "digital-mask.redis.passwordKey" . }}
- name: DMASK_BROKER_URL
  value: {{ printf "%s://%s:$(REDIS_PASSWORD)@%s" $scheme $r.username $hostPath | quote }}
{{- else }}
- name: DMASK_BROKER_URL
  value: {{ printf "%s://%s" $scheme $hostPath | quote }}
{{- end }}
{{- end -}}

{{/* S3 credentials and application secrets. Usage: include "digital-mask.env.secrets" $ */}}
{{- define "digital-mask.env.secrets" -}}
{{- if or .Values.externalS3.existingSecret .Values.externalS3.accessKey }}
- name: DMASK_S3_ACCESS_KEY
  valueFrom:
    secretKeyRef:
      name: {{ include "digital-mask.s3.secretName" . }}
      key: {{ include "digital-mask.s3.accessKeyKey" . }}
{{- end }}
{{- if or .Values.externalS3.existingSecret .Values.externalS3.secretKey }}
- name: DMASK_S3_SECRET_KEY
  valueFrom:
    secretKeyRef:
      name: {{ include "digital-mask.s3.secretName" . }}
      key: {{ include "digital-mask.s3.secretKeyKey" . }}
{{- end }}
- name: DMASK_HMAC_KEY
  valueFrom:
    secretKeyRef:
      name: {{ include "digital-mask.auth.secretName" . }}
      key: {{ include "digital-mask.auth.hmacKeyKey" . }}
{{- if .Values.auth.existingSecret }}
- name: DMASK_SSE_C_KEY
  valueFrom:
    secretKeyRef:
      name: {{ .Values.auth.existingSecret }}
      key: {{ .Values.auth.existingSecretSseCKeyKey }}
      optional: true
{{- else if .Values.auth.sseCKey }}
- name: DMASK_SSE_C_KEY
  valueFrom:
    secretKeyRef:
      name: {{ include "digital-mask.secretName" . }}
      key: sse-c-key
{{- end }}
{{- if .Values.auth.existingSecret }}
- name: DMASK_OIDC_CLIENT_SECRET
  valueFrom:
    secretKeyRef:
      name: {{ .Values.auth.existingSecret }}
      key: {{ .Values.auth.existingSecretOidcClientSecretKey }}
      optional: true
{{- else if .Values.auth.oidcClientSecret }}
- name: DMASK_OIDC_CLIENT_SECRET
  valueFrom:
    secretKeyRef:
      name: {{ include "digital-mask.secretName" . }}
      key: oidc-client-secret
{{- end }}
{{- end -}}

{{/* Worker heartbeat check, shared by the liveness and startup probes. */}}
{{- define "digital-mask.worker.heartbeatCommand" -}}
- /bin/sh
- -c
- {{ printf "f=%s; test -f \"$f\" && test $(( $(date +%%s) - $(stat -c %%Y \"$f\") )) -lt %s" (.Values.worker.heartbeat.file | squote) (include "digital-mask.scalar" .Values.worker.heartbeat.maxAgeSeconds) | quote }}
{{- end -}}

{{/* /tmp and DMASK_HOME emptyDirs: the root filesystem is read-only. */}}
{{- define "digital-mask.volumeMounts" -}}
- name: tmp
  mountPath: /tmp
- name: data
  mountPath: {{ .Values.config.home }}
{{- end -}}

{{- define "digital-mask.volumes" -}}
- name: tmp
  emptyDir:
    sizeLimit: {{ .tmpSizeLimit }}
- name: data
  emptyDir:
    sizeLimit: 1Gi
{{- end -}}

{{- define "digital-mask.pdbSpec" -}}
{{- if .minAvailable }}
minAvailable: {{ .minAvailable }}
{{- else if .maxUnavailable }}
maxUnavailable: {{ .maxUnavailable }}
{{- else }}
maxUnavailable: 1
{{- end }}
{{- end -}}

{{/* Egress rules shared by the API, the workers (all three backends) and the Job (database only).
Usage: include "digital-mask.networkPolicy.egress" (dict "root" $ "database" true "redis" true "s3" true) */}}
{{- define "digital-mask.networkPolicy.egress" -}}
{{- $np := .root.Values.networkPolicy -}}
- ports:
    - port: 53
      protocol: UDP
    - port: 53
      protocol: TCP
  {{- with $np.egress.dnsTo }}
  to:
    {{- toYaml . | nindent 4 }}
  {{- end }}
{{- if .database }}
- ports:
    - port: {{ include "digital-mask.scalar" .root.Values.externalDatabase.port }}
      protocol: TCP
  {{- with $np.egress.databaseTo }}
  to:
    {{- toYaml . | nindent 4 }}
  {{- end }}
{{- end }}
{{- if .redis }}
- ports:
    - port: {{ include "digital-mask.scalar" .root.Values.externalRedis.port }}
      protocol: TCP
  {{- with $np.egress.redisTo }}
  to:
    {{- toYaml . | nindent 4 }}
  {{- end }}
{{- end }}
{{- if .s3 }}
- ports:
    - port: {{ include "digital-mask.s3.port" .root }}
      protocol: TCP
  {{- with $np.egress.s3To }}
  to:
    {{- toYaml . | nindent 4 }}
  {{- end }}
{{- with $np.egress.extra }}
{{ toYaml . }}
{{- end }}
{{- end }}
{{- end -}}
