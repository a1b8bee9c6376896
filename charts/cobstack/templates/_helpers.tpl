{{- define "cobstack.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "cobstack.selectorLabels" -}}
app.kubernetes.io/name: {{ .Chart.Name }}-operator
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "cobstack.labels" -}}
{{ include "cobstack.selectorLabels" . }}
app.kubernetes.io/component: operator
app.kubernetes.io/part-of: cobstack
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end -}}

{{- define "cobstack.serviceAccountName" -}}
{{- default (include "cobstack.fullname" .) .Values.serviceAccount.name -}}
{{- end -}}

{{- define "cobstack.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) -}}
{{- end -}}

{{/* What the operator does, and nothing more: read CobStacks, write their status, apply children. */}}
{{- define "cobstack.rules" -}}
- apiGroups: [cobstack.dev]
  resources: [cobstacks]
  verbs: [get, list, watch]
- apiGroups: [cobstack.dev]
  resources: [cobstacks/status]
  verbs: [patch]
# Children carry blockOwnerDeletion, which clusters enforcing OwnerReferencesPermissionEnforcement check.
- apiGroups: [cobstack.dev]
  resources: [cobstacks/finalizers]
  verbs: [update]
# Server-side apply is a patch that creates what is missing; get before each apply tells drift
# apart, list+watch trigger it.
- apiGroups: [""]
  resources: [configmaps, services, persistentvolumeclaims]
  verbs: [get, list, watch, create, patch]
- apiGroups: [apps]
  resources: [deployments, statefulsets]
  verbs: [get, list, watch, create, patch]
# Superseded training Jobs are deleted (bounded history).
- apiGroups: [batch]
  resources: [jobs]
  verbs: [get, list, watch, create, patch, delete]
- apiGroups: [""]
  resources: [events]
  verbs: [create]
{{- end -}}

{{- define "cobstack.restrictedContainer" -}}
allowPrivilegeEscalation: false
readOnlyRootFilesystem: true
runAsNonRoot: true
capabilities:
  drop: [ALL]
seccompProfile:
  type: RuntimeDefault
{{- end -}}
