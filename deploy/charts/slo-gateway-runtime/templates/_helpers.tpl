{{- define "rt.image" -}}
{{- if .Values.image.digest -}}
{{ .Values.image.repository }}@{{ .Values.image.digest }}
{{- else -}}
{{ .Values.image.repository }}:{{ .Values.image.tag }}
{{- end -}}
{{- end -}}

{{- define "rt.labels" -}}
app.kubernetes.io/part-of: slo-gateway
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
{{- end -}}

{{/* CN of a seed certificate in Gardener's convention; fails on names the CN cannot hold. */}}
{{- define "rt.seedCommonName" -}}
{{- $cn := printf "gardener.cloud:system:seed:%s" . -}}
{{- if gt (len $cn) 64 -}}
{{- fail (printf "seed name %q is %d characters: the certificate CN gardener.cloud:system:seed:<name> allows at most 64 bytes, so at most 37" . (len .)) -}}
{{- end -}}
{{- $cn -}}
{{- end -}}

{{/* Egress to DNS in Gardener's conventions: CoreDNS/kube-dns pods (53 via the Service, 8053 on the
pods) and node-local-dns (host network, fixed addresses). One NetworkPolicy egress rule. */}}
{{- define "rt.dnsEgress" -}}
- to:
    - namespaceSelector:
        matchLabels:
          kubernetes.io/metadata.name: kube-system
      podSelector:
        matchExpressions:
          - key: k8s-app
            operator: In
            values: [kube-dns, node-local-dns]
    {{- range concat .Values.dns.nodeLocalDNSCIDRs .Values.dns.extraCIDRs }}
    - ipBlock:
        cidr: {{ . | quote }}
    {{- end }}
  ports:
    - {port: 53, protocol: UDP}
    - {port: 53, protocol: TCP}
    - {port: 8053, protocol: UDP}
    - {port: 8053, protocol: TCP}
{{- end -}}

{{/* Where the receiver forwards to: the SLO Prometheus' Service in the monitoring namespace. */}}
{{- define "rt.forwardURL" -}}
http://prometheus-slo.{{ .Values.namespaces.monitoring }}.svc.cluster.local:9090/api/v1/write
{{- end -}}

{{/* The receiver's config as YAML, from values (receiver.*). */}}
{{- define "rt.receiverConfig" -}}
{{- $config := dict
  "listen" "0.0.0.0:8443"
  "admin_listen" "0.0.0.0:9465"
  "tls" (dict
    "cert_file" "/etc/slo-gateway/tls/tls.crt"
    "key_file" "/etc/slo-gateway/tls/tls.key"
    "client_ca_file" "/etc/slo-gateway/client-ca/ca.crt")
  "forward" (dict "url" (include "rt.forwardURL" .))
  "limits" (dict
    "samples_per_second_per_seed" (int64 .Values.receiver.samplesPerSecondPerSeed)
    "burst_samples_per_seed" (int64 .Values.receiver.burstSamplesPerSeed))
}}
{{- $config = mergeOverwrite $config (deepCopy .Values.receiver.extraConfig) }}
{{- toYaml $config -}}
{{- end -}}

{{/* Selector labels of the SLO Prometheus' pods (set by prometheus-operator). */}}
{{- define "rt.prometheusPodLabels" -}}
app.kubernetes.io/name: prometheus
operator.prometheus.io/name: slo
{{- end -}}

{{- define "rt.podSecurityContext" -}}
runAsNonRoot: true
runAsUser: 65532
runAsGroup: 65532
fsGroup: 65532
seccompProfile:
  type: RuntimeDefault
{{- end -}}

{{- define "rt.containerSecurityContext" -}}
allowPrivilegeEscalation: false
readOnlyRootFilesystem: true
privileged: false
capabilities:
  drop: [ALL]
{{- end -}}

{{/* The receiver's name, required: the server certificate and the agents' URL carry it. */}}
{{- define "rt.host" -}}
{{- required "receiver.host is required: the receiver's public name (the agents' remote_write.url host, the server certificate's DNS name)" .Values.receiver.host -}}
{{- end -}}

{{/* Scheduling and pull secrets of a pod spec (Deployment pod template or prometheus-operator
resource spec): imagePullSecrets, nodeSelector, tolerations, affinity from the top-level values. */}}
{{- define "rt.scheduling" -}}
{{- with .Values.imagePullSecrets }}
imagePullSecrets:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .Values.nodeSelector }}
nodeSelector:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .Values.tolerations }}
tolerations:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .Values.affinity }}
affinity:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- end -}}
