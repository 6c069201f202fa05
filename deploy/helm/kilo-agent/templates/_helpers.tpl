{{/*
Internal helpers. Every helper takes a context with `.Values` (this chart's values) and
`.Release`; none reads `.Chart`, `.Files` or `.Template`, because the sidecar templates
(_sidecar.tpl) call them from an app chart, where those belong to the app chart.
*/}}

{{/* The chart name, or nameOverride. */}}
{{- define "kilo-agent.name" -}}
{{- default "kilo-agent" .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* `<release>-kilo-agent`, or fullnameOverride; a release named like the chart is used as is. */}}
{{- define "kilo-agent.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- $name := include "kilo-agent.name" . -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{/* Name of the ConfigMap holding the agent config (shared by every mode). */}}
{{- define "kilo-agent.configMapName" -}}
{{- printf "%s-config" (include "kilo-agent.fullname" .) | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "kilo-agent.selectorLabels" -}}
app.kubernetes.io/name: {{ include "kilo-agent.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{/* Labels of the resources this chart renders itself (these templates have `.Chart`). */}}
{{- define "kilo-agent.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{ include "kilo-agent.selectorLabels" . }}
app.kubernetes.io/version: {{ .Values.image.tag | default .Chart.AppVersion | quote }}
app.kubernetes.io/component: agent
app.kubernetes.io/part-of: kilo-agent
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- with .Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end -}}

{{- define "kilo-agent.image" -}}
{{- if .Values.image.digest -}}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest -}}
{{- else -}}
{{- printf "%s:%s" .Values.image.repository (toString .Values.image.tag) -}}
{{- end -}}
{{- end -}}

{{- define "kilo-agent.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "kilo-agent.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{/* "true" when the config talks to the Kubernetes API with the pod's own token, else "". */}}
{{- define "kilo-agent.needsKubeToken" -}}
{{- $found := false -}}
{{- range $name, $integration := (.Values.config.integrations | default dict) -}}
{{- $integration = $integration | default dict -}}
{{- $preset := toString (get $integration "preset") -}}
{{- $authType := toString (get ((get $integration "auth") | default dict) "type") -}}
{{- if or (hasPrefix "kubernetes" (lower $name)) (hasPrefix "kubernetes" (lower $preset)) (eq $authType "kubernetes") -}}
{{- $found = true -}}
{{- end -}}
{{- end -}}
{{- if contains "/var/run/secrets/kubernetes.io/serviceaccount" (toYaml .Values.config) -}}
{{- $found = true -}}
{{- end -}}
{{- if $found -}}true{{- end -}}
{{- end -}}

{{/* "true" or "false": whether the pod mounts its ServiceAccount token. */}}
{{- define "kilo-agent.automountToken" -}}
{{- if kindIs "bool" .Values.serviceAccount.automountToken -}}
{{- .Values.serviceAccount.automountToken -}}
{{- else -}}
{{- ternary "true" "false" (eq (include "kilo-agent.needsKubeToken" .) "true") -}}
{{- end -}}
{{- end -}}

{{- define "kilo-agent.isUnixSidecar" -}}
{{- if and (eq .Values.mode "sidecar") (eq .Values.sidecar.transport "unix") -}}true{{- end -}}
{{- end -}}

{{- define "kilo-agent.socketPath" -}}
{{- printf "%s/%s" (trimSuffix "/" .Values.sidecar.socketDir) .Values.sidecar.socketName -}}
{{- end -}}

{{/* The address the agent serves on (`--listen`). */}}
{{- define "kilo-agent.listenAddress" -}}
{{- if eq .Values.mode "sidecar" -}}
{{- if eq .Values.sidecar.transport "unix" -}}
{{- printf "unix://%s" (include "kilo-agent.socketPath" .) -}}
{{- else -}}
{{- printf "127.0.0.1:%d" (int .Values.port) -}}
{{- end -}}
{{- else -}}
{{- printf "0.0.0.0:%d" (int .Values.port) -}}
{{- end -}}
{{- end -}}

{{/* The address an app in the same pod dials (sidecar mode). */}}
{{- define "kilo-agent.targetAddress" -}}
{{- if eq .Values.sidecar.transport "unix" -}}
{{- printf "unix://%s" (include "kilo-agent.socketPath" .) -}}
{{- else -}}
{{- printf "127.0.0.1:%d" (int .Values.port) -}}
{{- end -}}
{{- end -}}

{{- define "kilo-agent.nativeSidecar" -}}
{{- if and (eq .Values.mode "sidecar") .Values.sidecar.native -}}true{{- end -}}
{{- end -}}

{{- define "kilo-agent.preStopSleep" -}}
{{- if and (gt (int .Values.preStopSleepSeconds) 0) (ne (include "kilo-agent.nativeSidecar" .) "true") -}}
{{- int .Values.preStopSleepSeconds -}}
{{- else -}}0{{- end -}}
{{- end -}}

{{- define "kilo-agent.terminationGracePeriodSeconds" -}}
{{- if kindIs "invalid" .Values.terminationGracePeriodSeconds -}}
{{- add (int (include "kilo-agent.preStopSleep" .)) (int .Values.gracePeriodSeconds) 10 -}}
{{- else -}}
{{- int .Values.terminationGracePeriodSeconds -}}
{{- end -}}
{{- end -}}

{{- define "kilo-agent.secretsMountPath" -}}
{{- trimSuffix "/" .Values.secretsMountPath -}}
{{- end -}}

{{/* The agent config as rendered into the ConfigMap (validated first). */}}
{{- define "kilo-agent.configYaml" -}}
{{- include "kilo-agent.validate" . -}}
{{- $cfg := deepCopy (.Values.config | default dict) -}}
{{- $server := deepCopy ((get $cfg "server") | default dict) -}}
{{- $_ := set $server "grace_period" (printf "%ds" (int .Values.gracePeriodSeconds)) -}}
{{- $_ := set $cfg "server" $server -}}
{{- if .Values.redis.existingSecret -}}
{{- $url := printf "${file:%s/redis/%s}" (include "kilo-agent.secretsMountPath" .) .Values.redis.secretKey -}}
{{- $_ := set $cfg "redis" (dict "url" $url "on_unavailable" .Values.redis.onUnavailable) -}}
{{- end -}}
{{- toYaml $cfg -}}
{{- end -}}

{{/* The checksum annotation that rolls the pods when the config changes. */}}
{{- define "kilo-agent.configChecksum" -}}
{{- include "kilo-agent.configYaml" . | sha256sum -}}
{{- end -}}

{{/* Fails unless `value` (at `path`) holds a ${...} reference rather than the secret itself. */}}
{{- define "kilo-agent.assertReference" -}}
{{- if not (and (kindIs "string" .value) (regexMatch "\\$\\{[^}]+\\}" .value)) -}}
{{- fail (printf "%s holds a plain value, and credentials must never be written into the ConfigMap: put it in a Secret, list that Secret under `secrets`, and write a reference such as \"${file:%s/<entry>/<key>}\" instead." .path .mount) -}}
{{- end -}}
{{- end -}}

{{/* Every check the schema cannot express; the messages say what to change. */}}
{{- define "kilo-agent.validate" -}}
{{- $v := .Values -}}
{{- $mount := include "kilo-agent.secretsMountPath" . -}}
{{- if not (has $v.mode (list "sidecar" "daemonset" "deployment")) -}}
{{- fail (printf "mode: %q is not a mode; use sidecar, daemonset or deployment." (toString $v.mode)) -}}
{{- end -}}
{{- $cfg := $v.config | default dict -}}
{{- if hasKey $cfg "listen" -}}
{{- fail "config.listen: the chart sets the listen address from the mode (sidecar.transport, port); remove config.listen." -}}
{{- end -}}
{{- if hasKey ((get $cfg "server") | default dict) "grace_period" -}}
{{- fail "config.server.grace_period: set gracePeriodSeconds instead; the chart renders it and sizes terminationGracePeriodSeconds above it." -}}
{{- end -}}
{{- if and $v.redis.existingSecret (hasKey $cfg "redis") -}}
{{- fail "config.redis and redis.existingSecret are both set; keep one (redis.existingSecret renders config.redis for you)." -}}
{{- end -}}
{{- if and (eq $v.mode "deployment") (empty (get $cfg "callers")) -}}
{{- fail "mode: deployment serves every pod that can reach its Service, so callers must authenticate: list them in config.callers, each with a token read from a Secret (see ci/deployment-values.yaml)." -}}
{{- end -}}
{{- $graceNeeded := add (int (include "kilo-agent.preStopSleep" .)) (int $v.gracePeriodSeconds) -}}
{{- if le (int (include "kilo-agent.terminationGracePeriodSeconds" .)) $graceNeeded -}}
{{- fail (printf "terminationGracePeriodSeconds must exceed preStopSleepSeconds + gracePeriodSeconds (%d), or the agent is killed while it drains; raise it or leave it empty." $graceNeeded) -}}
{{- end -}}
{{- /* Credentials are references, never values. */ -}}
{{- range $i, $caller := ((get $cfg "callers") | default list) -}}
{{- include "kilo-agent.assertReference" (dict "value" (get $caller "token") "path" (printf "config.callers[%d].token" $i) "mount" $mount) -}}
{{- end -}}
{{- $authSecrets := list "token" "value" "password" "client_secret" "refresh_token" "private_key" "access_key_id" "secret_access_key" "session_token" -}}
{{- $seedSecrets := list "apiKey" "api_key" "botToken" "token" "webhookUrl" "webhook_url" -}}
{{- range $name, $integration := ((get $cfg "integrations") | default dict) -}}
{{- $integration = $integration | default dict -}}
{{- range $key := $seedSecrets -}}
{{- if hasKey $integration $key -}}
{{- include "kilo-agent.assertReference" (dict "value" (get $integration $key) "path" (printf "config.integrations.%s.%s" $name $key) "mount" $mount) -}}
{{- end -}}
{{- end -}}
{{- $auth := (get $integration "auth") | default dict -}}
{{- range $key := $authSecrets -}}
{{- if hasKey $auth $key -}}
{{- include "kilo-agent.assertReference" (dict "value" (get $auth $key) "path" (printf "config.integrations.%s.auth.%s" $name $key) "mount" $mount) -}}
{{- end -}}
{{- end -}}
{{- range $header, $value := ((get $integration "headers") | default dict) -}}
{{- if regexMatch "(?i)(authorization|api[-_]?key|token|secret|password|cookie)" $header -}}
{{- include "kilo-agent.assertReference" (dict "value" $value "path" (printf "config.integrations.%s.headers.%s" $name $header) "mount" $mount) -}}
{{- end -}}
{{- end -}}
{{- $baseUrl := toString (get $integration "base_url" | default (get $integration "baseUrl")) -}}
{{- if regexMatch "^[a-zA-Z][a-zA-Z0-9+.-]*://[^/@]*@" $baseUrl -}}
{{- fail (printf "config.integrations.%s.base_url carries credentials in its user-info part; use auth with a ${file:} reference instead." $name) -}}
{{- end -}}
{{- end -}}
{{- $redisUrl := toString (get ((get $cfg "redis") | default dict) "url") -}}
{{- if and (contains "@" $redisUrl) (not (regexMatch "\\$\\{[^}]+\\}" $redisUrl)) -}}
{{- fail "config.redis.url holds a password; keep the URL in a Secret and set redis.existingSecret (or reference it with ${file:})." -}}
{{- end -}}
{{- /* Each ${file:} reference under secretsMountPath needs its Secret mounted. */ -}}
{{- $mounted := list -}}
{{- range $s := ($v.secrets | default list) -}}
{{- if has $s.name $mounted -}}
{{- fail (printf "secrets: the name %q appears twice; each entry needs its own directory name." $s.name) -}}
{{- end -}}
{{- if and $v.redis.existingSecret (eq $s.name "redis") -}}
{{- fail "secrets: the name \"redis\" is taken by redis.existingSecret; rename the entry." -}}
{{- end -}}
{{- $mounted = append $mounted $s.name -}}
{{- end -}}
{{- if $v.redis.existingSecret -}}
{{- $mounted = append $mounted "redis" -}}
{{- end -}}
{{- range $ref := regexFindAll "\\$\\{file:[^}]+\\}" (toYaml $cfg) -1 -}}
{{- $path := $ref | trimPrefix "${file:" | trimSuffix "}" -}}
{{- if hasPrefix (printf "%s/" $mount) $path -}}
{{- $entry := first (splitList "/" (trimPrefix (printf "%s/" $mount) $path)) -}}
{{- if not (has $entry $mounted) -}}
{{- fail (printf "config references %s, but no Secret is mounted at %s/%s: add {name: %s, secretName: <your Secret>} to secrets." $ref $mount $entry $entry) -}}
{{- end -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{/* A probe handler: native gRPC on the pod IP, else kilo-agent-probe through the socket. */}}
{{- define "kilo-agent.probeHandler" -}}
{{- if eq .Values.mode "sidecar" -}}
exec:
  command:
    - kilo-agent-probe
    - {{ include "kilo-agent.targetAddress" . | quote }}
{{- else -}}
grpc:
  port: {{ int .Values.port }}
  service: ""
{{- end -}}
{{- end -}}

{{/* The agent container, as one list item. */}}
{{- define "kilo-agent.container" -}}
{{- $v := .Values -}}
{{- $mount := include "kilo-agent.secretsMountPath" . -}}
- name: kilo-agent
  image: {{ include "kilo-agent.image" . | quote }}
  imagePullPolicy: {{ $v.image.pullPolicy }}
  {{- if eq (include "kilo-agent.nativeSidecar" .) "true" }}
  restartPolicy: Always
  {{- end }}
  {{- if eq (include "kilo-agent.isUnixSidecar" .) "true" }}
  # The socket lives in an emptyDir only this pod sees; umask 0 lets app containers running
  # as another user connect to it.
  command:
    - /bin/sh
    - -c
    - umask 0000 && exec kilo-agent serve "$@"
    - kilo-agent
  {{- end }}
  args:
    - --config
    - /etc/kilo-agent/config.yaml
    - --listen
    - {{ include "kilo-agent.listenAddress" . | quote }}
  {{- if ne $v.mode "sidecar" }}
  ports:
    - name: grpc
      containerPort: {{ int $v.port }}
      protocol: TCP
  {{- end }}
  env:
    - name: POD_NAME
      valueFrom:
        fieldRef:
          fieldPath: metadata.name
    - name: POD_UID
      valueFrom:
        fieldRef:
          fieldPath: metadata.uid
    - name: POD_NAMESPACE
      valueFrom:
        fieldRef:
          fieldPath: metadata.namespace
    - name: NODE_NAME
      valueFrom:
        fieldRef:
          fieldPath: spec.nodeName
    - name: KILO_AGENT_CONFIG
      value: /etc/kilo-agent/config.yaml
    - name: OTEL_SERVICE_NAME
      value: {{ $v.telemetry.serviceName | quote }}
    {{- $attrs := list "k8s.pod.name=$(POD_NAME)" "k8s.pod.uid=$(POD_UID)" "k8s.namespace.name=$(POD_NAMESPACE)" "k8s.node.name=$(NODE_NAME)" "k8s.container.name=kilo-agent" }}
    {{- range $key, $value := $v.telemetry.resourceAttributes }}
    {{- $attrs = append $attrs (printf "%s=%s" $key (toString $value)) }}
    {{- end }}
    - name: OTEL_RESOURCE_ATTRIBUTES
      value: {{ join "," $attrs | quote }}
    {{- $otelEnv := $v.telemetry.env | default dict }}
    {{- if $v.telemetry.otlp.useHostIP }}
    - name: HOST_IP
      valueFrom:
        fieldRef:
          fieldPath: status.hostIP
    - name: OTEL_EXPORTER_OTLP_ENDPOINT
      value: {{ printf "http://$(HOST_IP):%d" (int $v.telemetry.otlp.hostPort) | quote }}
    {{- else if $v.telemetry.otlp.endpoint }}
    - name: OTEL_EXPORTER_OTLP_ENDPOINT
      value: {{ $v.telemetry.otlp.endpoint | quote }}
    {{- else }}
    {{- /* No collector configured: do not let the SDK retry against localhost:4317. */}}
    {{- range $name := list "OTEL_TRACES_EXPORTER" "OTEL_METRICS_EXPORTER" "OTEL_LOGS_EXPORTER" }}
    {{- if not (hasKey $otelEnv $name) }}
    - name: {{ $name }}
      value: none
    {{- end }}
    {{- end }}
    {{- end }}
    {{- with $v.telemetry.otlp.protocol }}
    - name: OTEL_EXPORTER_OTLP_PROTOCOL
      value: {{ . | quote }}
    {{- end }}
    {{- range $name, $value := $otelEnv }}
    - name: {{ $name }}
      value: {{ toString $value | quote }}
    {{- end }}
    {{- with $v.extraEnv }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
  {{- with $v.resources }}
  resources:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  securityContext:
    {{- toYaml $v.securityContext | nindent 4 }}
  {{- $handler := include "kilo-agent.probeHandler" . }}
  {{- range $kind := list "startup" "readiness" "liveness" }}
  {{- $probe := index $v.probes $kind }}
  {{- if $probe.enabled }}
  {{ $kind }}Probe:
    {{- $handler | nindent 4 }}
    periodSeconds: {{ int $probe.periodSeconds }}
    timeoutSeconds: {{ int $probe.timeoutSeconds }}
    failureThreshold: {{ int $probe.failureThreshold }}
  {{- end }}
  {{- end }}
  {{- $sleep := int (include "kilo-agent.preStopSleep" .) }}
  {{- if gt $sleep 0 }}
  lifecycle:
    preStop:
      exec:
        command: ["sleep", "{{ $sleep }}"]
  {{- end }}
  volumeMounts:
    - name: kilo-agent-config
      mountPath: /etc/kilo-agent
      readOnly: true
    - name: kilo-agent-tmp
      mountPath: /tmp
    {{- if eq (include "kilo-agent.isUnixSidecar" .) "true" }}
    - name: kilo-agent-socket
      mountPath: {{ $v.sidecar.socketDir }}
    {{- end }}
    {{- range $s := $v.secrets }}
    - name: {{ printf "kilo-agent-secret-%s" $s.name }}
      mountPath: {{ printf "%s/%s" $mount $s.name }}
      readOnly: true
    {{- end }}
    {{- if $v.redis.existingSecret }}
    - name: kilo-agent-redis
      mountPath: {{ printf "%s/redis" $mount }}
      readOnly: true
    {{- end }}
    {{- with $v.extraVolumeMounts }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
{{- end -}}

{{/* The agent's volumes, as list items. */}}
{{- define "kilo-agent.volumes" -}}
{{- $v := .Values -}}
- name: kilo-agent-config
  configMap:
    name: {{ include "kilo-agent.configMapName" . }}
- name: kilo-agent-tmp
  emptyDir:
    sizeLimit: 64Mi
{{- if eq (include "kilo-agent.isUnixSidecar" .) "true" }}
- name: kilo-agent-socket
  emptyDir:
    sizeLimit: {{ $v.sidecar.socketVolumeSizeLimit }}
{{- end }}
{{- range $s := $v.secrets }}
- name: {{ printf "kilo-agent-secret-%s" $s.name }}
  secret:
    secretName: {{ $s.secretName }}
    defaultMode: {{ int $v.secretsDefaultMode }}
    {{- if $s.optional }}
    optional: true
    {{- end }}
    {{- with $s.items }}
    items:
      {{- toYaml . | nindent 6 }}
    {{- end }}
{{- end }}
{{- if $v.redis.existingSecret }}
- name: kilo-agent-redis
  secret:
    secretName: {{ $v.redis.existingSecret }}
    defaultMode: {{ int $v.secretsDefaultMode }}
    items:
      - key: {{ $v.redis.secretKey }}
        path: {{ $v.redis.secretKey }}
{{- end }}
{{- with $v.extraVolumes }}
{{ toYaml . }}
{{- end }}
{{- end -}}

{{/* Pod spec shared by the DaemonSet and the Deployment. */}}
{{- define "kilo-agent.podSpec" -}}
{{- $v := .Values -}}
serviceAccountName: {{ include "kilo-agent.serviceAccountName" . }}
automountServiceAccountToken: {{ include "kilo-agent.automountToken" . }}
enableServiceLinks: false
terminationGracePeriodSeconds: {{ include "kilo-agent.terminationGracePeriodSeconds" . }}
{{- with $v.imagePullSecrets }}
imagePullSecrets:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with $v.priorityClassName }}
priorityClassName: {{ . }}
{{- end }}
securityContext:
  {{- toYaml $v.podSecurityContext | nindent 2 }}
containers:
  {{- include "kilo-agent.container" . | nindent 2 }}
volumes:
  {{- include "kilo-agent.volumes" . | nindent 2 }}
{{- with $v.nodeSelector }}
nodeSelector:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with $v.tolerations }}
tolerations:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with $v.affinity }}
affinity:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- end -}}

{{/* Pod template metadata shared by the DaemonSet and the Deployment. */}}
{{- define "kilo-agent.podMetadata" -}}
labels:
  {{- include "kilo-agent.labels" . | nindent 2 }}
  {{- with .Values.podLabels }}
  {{- toYaml . | nindent 2 }}
  {{- end }}
annotations:
  checksum/config: {{ include "kilo-agent.configChecksum" . }}
  {{- with .Values.podAnnotations }}
  {{- toYaml . | nindent 2 }}
  {{- end }}
{{- end -}}

{{/* TCP ports the agent sends to, for the NetworkPolicy: one per line. */}}
{{- define "kilo-agent.egressPorts" -}}
{{- $v := .Values -}}
{{- $ports := list -}}
{{- range $name, $integration := ($v.config.integrations | default dict) -}}
{{- $integration = $integration | default dict -}}
{{- $url := toString (get $integration "base_url" | default (get $integration "baseUrl")) -}}
{{- $port := 443 -}}
{{- if regexMatch "^[a-zA-Z][a-zA-Z0-9+.-]*://" $url -}}
{{- $authority := regexReplaceAll "^[a-zA-Z][a-zA-Z0-9+.-]*://([^/?#]*).*$" $url "${1}" -}}
{{- $explicit := regexFind ":[0-9]+$" $authority -}}
{{- if $explicit -}}
{{- $port = int (trimPrefix ":" $explicit) -}}
{{- else if hasPrefix "http:" (lower $url) -}}
{{- $port = 80 -}}
{{- end -}}
{{- end -}}
{{- $ports = append $ports $port -}}
{{- end -}}
{{- if eq (include "kilo-agent.needsKubeToken" .) "true" -}}
{{- $ports = append (append $ports 443) 6443 -}}
{{- end -}}
{{- if or $v.redis.existingSecret $v.config.redis -}}
{{- $ports = append $ports (int $v.redis.port) -}}
{{- end -}}
{{- if $v.telemetry.otlp.useHostIP -}}
{{- $ports = append $ports (int $v.telemetry.otlp.hostPort) -}}
{{- else if $v.telemetry.otlp.endpoint -}}
{{- $authority := regexReplaceAll "^[a-zA-Z][a-zA-Z0-9+.-]*://([^/?#]*).*$" $v.telemetry.otlp.endpoint "${1}" -}}
{{- $explicit := regexFind ":[0-9]+$" $authority -}}
{{- $ports = append $ports (ternary (int (trimPrefix ":" $explicit)) 4317 (ne $explicit "")) -}}
{{- end -}}
{{- range $p := $v.networkPolicy.extraEgressPorts -}}
{{- $ports = append $ports (int $p) -}}
{{- end -}}
{{- range $p := ($ports | uniq | sortAlpha) }}
{{ $p }}
{{- end -}}
{{- end -}}
