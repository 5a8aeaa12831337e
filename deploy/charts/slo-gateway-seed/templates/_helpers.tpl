{{/* The seed's name: injected by gardenlet (.Values.gardener.seed.name) or .Values.seedName. */}}
{{- define "seed.name" -}}
{{- $injected := "" -}}
{{- if and .Values.gardener (kindIs "map" .Values.gardener) .Values.gardener.seed -}}
{{- $injected = .Values.gardener.seed.name | default "" -}}
{{- end -}}
{{- $injected | default .Values.seedName -}}
{{- end -}}

{{/* CN of the seed certificate in Gardener's convention; fails on names the CN cannot hold. */}}
{{- define "seed.commonName" -}}
{{- $name := include "seed.name" . -}}
{{- if not $name -}}
{{- fail "agent.certificate.enabled needs the seed name: gardener.seed.name (injected by gardenlet) or seedName" -}}
{{- end -}}
{{- $cn := printf "gardener.cloud:system:seed:%s" $name -}}
{{- if gt (len $cn) 64 -}}
{{- fail (printf "seed name %q is %d characters: the certificate CN gardener.cloud:system:seed:<name> allows at most 64 bytes, so at most 37" $name (len $name)) -}}
{{- end -}}
{{- $cn -}}
{{- end -}}

{{- define "seed.image" -}}
{{- if .Values.image.digest -}}
{{ .Values.image.repository }}@{{ .Values.image.digest }}
{{- else -}}
{{ .Values.image.repository }}:{{ .Values.image.tag }}
{{- end -}}
{{- end -}}

{{/* Labels on every object. */}}
{{- define "seed.labels" -}}
app.kubernetes.io/part-of: slo-gateway
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
{{- end -}}

{{/* Egress to DNS in Gardener's conventions: CoreDNS/kube-dns pods (53 via the Service, 8053 on the
pods) and node-local-dns (host network, fixed addresses). One NetworkPolicy egress rule. */}}
{{- define "seed.dnsEgress" -}}
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

{{/* Pod security context shared by both components (distroless nonroot, uid 65532). */}}
{{- define "seed.podSecurityContext" -}}
runAsNonRoot: true
runAsUser: 65532
runAsGroup: 65532
fsGroup: 65532
fsGroupChangePolicy: OnRootMismatch
seccompProfile:
  type: RuntimeDefault
{{- end -}}

{{- define "seed.containerSecurityContext" -}}
allowPrivilegeEscalation: false
readOnlyRootFilesystem: true
privileged: false
capabilities:
  drop: [ALL]
{{- end -}}

{{/* The agent's config as YAML, from values (agent.*) and files/agent-match.yaml. */}}
{{- define "seed.agentConfig" -}}
{{- $match := (.Files.Get "files/agent-match.yaml" | fromYaml).match }}
{{- if not $match }}{{ fail "files/agent-match.yaml has no match list: run deploy/sync-generated.sh" }}{{ end }}
{{- $config := dict
  "listen" "0.0.0.0:9464"
  "scrape" (dict
    "max_body_bytes" (int64 .Values.agent.maxBodyBytes)
    "targets" (list (dict "url" .Values.agent.aggregate.url "match" $match)))
  "remote_write" (dict
    "url" .Values.agent.receiver.url
    "tls" (dict
      "ca_file" "/etc/slo-gateway/receiver-ca/ca.crt"
      "cert_file" "/etc/slo-gateway/tls/tls.crt"
      "key_file" "/etc/slo-gateway/tls/tls.key"))
  "buffer" (dict
    "path" "/var/lib/slo-gateway/buffer"
    "max_bytes" (int64 .Values.agent.buffer.maxBytes)
    "max_age" .Values.agent.buffer.maxAge)
}}
{{- if .Values.agent.proxy.url }}
{{- $_ := set $config.remote_write "proxy_url" .Values.agent.proxy.url }}
{{- end }}
{{- $config = mergeOverwrite $config (deepCopy .Values.agent.extraConfig) }}
{{- toYaml $config -}}
{{- end -}}
