{{/*
Sidecar mode: the named templates an app chart includes to run the agent in its own pods.

Add this chart as a dependency named `kilo-agent` (its default mode is `sidecar`; the dependency
renders the agent's ConfigMap), then in the app's pod template:

  template:
    metadata:
      annotations:
        {{- include "kilo-agent.sidecar.podAnnotations" . | nindent 8 }}
    spec:
      automountServiceAccountToken: {{ include "kilo-agent.sidecar.automountServiceAccountToken" . }}
      securityContext:
        fsGroup: 65532                  # lets the agent read its mounted secret files
      initContainers:
        {{- include "kilo-agent.sidecar.initContainers" . | nindent 8 }}
      containers:
        - name: app
          env:
            {{- include "kilo-agent.sidecar.appEnv" . | nindent 12 }}
          volumeMounts:
            {{- include "kilo-agent.sidecar.appVolumeMounts" . | nindent 12 }}
        {{- include "kilo-agent.sidecar.containers" . | nindent 8 }}
      volumes:
        {{- include "kilo-agent.sidecar.volumes" . | nindent 8 }}

Each template takes the app chart's root context (`.`). With an aliased dependency pass
`(dict "root" . "values" .Values.<alias>)` instead. `initContainers` is empty for classic
sidecars (`sidecar.native: false`) and `containers` is empty for native ones, so include both.
*/}}

{{/* Resolves the agent's values from the caller's context, then renders .template with them. */}}
{{- define "kilo-agent.sidecar.call" -}}
{{- $arg := .arg -}}
{{- $root := $arg -}}
{{- $values := dict -}}
{{- if hasKey $arg "root" -}}
{{- $root = $arg.root -}}
{{- $values = $arg.values -}}
{{- else if and (eq $root.Chart.Name "kilo-agent") (hasKey $root.Values "mode") -}}
{{- $values = $root.Values -}}
{{- else if hasKey $root.Values "kilo-agent" -}}
{{- $values = index $root.Values "kilo-agent" -}}
{{- else -}}
{{- fail "kilo-agent sidecar templates: add the kilo-agent chart as a dependency named kilo-agent, or pass (dict \"root\" . \"values\" .Values.<alias>) for an aliased one." -}}
{{- end -}}
{{- if ne (toString $values.mode) "sidecar" -}}
{{- fail (printf "kilo-agent sidecar templates need mode: sidecar (this release has mode: %s)." (toString $values.mode)) -}}
{{- end -}}
{{- include .template (dict "Values" $values "Release" $root.Release) -}}
{{- end -}}

{{/* The agent as a native sidecar (init container with restartPolicy: Always), or nothing. */}}
{{- define "kilo-agent.sidecar.initContainers" -}}
{{- include "kilo-agent.sidecar.call" (dict "arg" . "template" "kilo-agent.sidecar.impl.initContainers") -}}
{{- end -}}
{{- define "kilo-agent.sidecar.impl.initContainers" -}}
{{- if .Values.sidecar.native -}}
{{- include "kilo-agent.container" . -}}
{{- end -}}
{{- end -}}

{{/* The agent as a classic sidecar container (sidecar.native: false), or nothing. */}}
{{- define "kilo-agent.sidecar.containers" -}}
{{- include "kilo-agent.sidecar.call" (dict "arg" . "template" "kilo-agent.sidecar.impl.containers") -}}
{{- end -}}
{{- define "kilo-agent.sidecar.impl.containers" -}}
{{- if not .Values.sidecar.native -}}
{{- include "kilo-agent.container" . -}}
{{- end -}}
{{- end -}}

{{/* The pod volumes the agent needs: config, /tmp, socket, mounted secrets. */}}
{{- define "kilo-agent.sidecar.volumes" -}}
{{- include "kilo-agent.sidecar.call" (dict "arg" . "template" "kilo-agent.volumes") -}}
{{- end -}}

{{/* Mounts for each app container that talks to the agent (the socket directory). */}}
{{- define "kilo-agent.sidecar.appVolumeMounts" -}}
{{- include "kilo-agent.sidecar.call" (dict "arg" . "template" "kilo-agent.sidecar.impl.appVolumeMounts") -}}
{{- end -}}
{{- define "kilo-agent.sidecar.impl.appVolumeMounts" -}}
{{- if eq .Values.sidecar.transport "unix" -}}
- name: kilo-agent-socket
  mountPath: {{ .Values.sidecar.socketDir }}
{{- end -}}
{{- end -}}

{{/* KILO_AGENT_TARGET: the address the app dials (unix:///run/kilo/agent.sock or 127.0.0.1:port). */}}
{{- define "kilo-agent.sidecar.appEnv" -}}
{{- include "kilo-agent.sidecar.call" (dict "arg" . "template" "kilo-agent.sidecar.impl.appEnv") -}}
{{- end -}}
{{- define "kilo-agent.sidecar.impl.appEnv" -}}
- name: KILO_AGENT_TARGET
  value: {{ include "kilo-agent.targetAddress" . | quote }}
{{- end -}}

{{/* The checksum annotation that rolls the app's pods when the agent config changes. */}}
{{- define "kilo-agent.sidecar.podAnnotations" -}}
{{- include "kilo-agent.sidecar.call" (dict "arg" . "template" "kilo-agent.sidecar.impl.podAnnotations") -}}
{{- end -}}
{{- define "kilo-agent.sidecar.impl.podAnnotations" -}}
checksum/kilo-agent-config: {{ include "kilo-agent.configChecksum" . }}
{{- end -}}

{{/* "true" when the agent's config needs the pod's ServiceAccount token, else "false". */}}
{{- define "kilo-agent.sidecar.automountServiceAccountToken" -}}
{{- include "kilo-agent.sidecar.call" (dict "arg" . "template" "kilo-agent.automountToken") -}}
{{- end -}}
