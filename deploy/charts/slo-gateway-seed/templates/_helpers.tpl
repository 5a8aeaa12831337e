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
    {{- range include "seed.dnsCIDRs" . | fromJsonArray }}
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
{{- $perSeed := include "seed.perSeed" . | fromJson }}
{{- $match := (.Files.Get "files/agent-match.yaml" | fromYaml).match }}
{{- if not $match }}{{ fail "files/agent-match.yaml has no match list: run deploy/sync-generated.sh" }}{{ end }}
{{- $config := dict
  "listen" "0.0.0.0:9464"
  "scrape" (dict
    "max_body_bytes" (int64 .Values.agent.maxBodyBytes)
    "targets" (list (dict "url" .Values.agent.aggregate.url "match" $match)))
  "remote_write" (dict
    "url" (required "agent.receiver.url is required: https://<the receiver's public name>/api/v1/write (or agent.receiver.byRegion, or the seed annotation slo-gateway.gardener.cloud/receiver-url)" $perSeed.receiver.url)
    "tls" (dict
      "ca_file" "/etc/slo-gateway/receiver-ca/ca.crt"
      "cert_file" "/etc/slo-gateway/tls/tls.crt"
      "key_file" "/etc/slo-gateway/tls/tls.key"))
  "buffer" (dict
    "path" "/var/lib/slo-gateway/buffer"
    "max_bytes" (int64 .Values.agent.buffer.maxBytes)
    "max_age" .Values.agent.buffer.maxAge)
}}
{{- if $perSeed.proxy.url }}
{{- $_ := set $config.remote_write "proxy_url" $perSeed.proxy.url }}
{{- end }}
{{- $config = mergeOverwrite $config (deepCopy .Values.agent.extraConfig) }}
{{- toYaml $config -}}
{{- end -}}

{{/* The seed's networks injected by gardenlet (gardener.seed.networks: nodes, pods, services), as a
list of CIDRs; empty without gardenlet. */}}
{{- define "seed.networks" -}}
{{- $out := list -}}
{{- if and .Values.gardener (kindIs "map" .Values.gardener) .Values.gardener.seed -}}
{{- with .Values.gardener.seed.networks -}}
{{- $networks := . -}}
{{- range $key := list "nodes" "pods" "services" -}}
{{- with (index $networks $key | default "") -}}
{{- range splitList "," . -}}
{{- $out = append $out (trim .) -}}
{{- end -}}
{{- end -}}
{{- end -}}
{{- end -}}
{{- end -}}
{{- toJson $out -}}
{{- end -}}

{{/* DNS addresses besides the pods: node-local-dns, dns.extraCIDRs and, under gardenlet, the
cluster DNS Service IP derived from gardener.seed.networks.services (its 10th address, where
Gardener's CoreDNS Service sits; IPv4 ranges whose last octet leaves room). */}}
{{- define "seed.dnsCIDRs" -}}
{{- $out := concat .Values.dns.nodeLocalDNSCIDRs .Values.dns.extraCIDRs (include "seed.perSeed" . | fromJson).dnsCIDRs -}}
{{- if and .Values.dns.deriveClusterDNS .Values.gardener (kindIs "map" .Values.gardener) .Values.gardener.seed -}}
{{- with .Values.gardener.seed.networks -}}
{{- range splitList "," (.services | default "") -}}
{{- $cidr := trim . -}}
{{- if and $cidr (not (contains ":" $cidr)) -}}
{{- $octets := splitList "." (first (splitList "/" $cidr)) -}}
{{- $last := atoi (last $octets) -}}
{{- if lt (add $last 10) 256 -}}
{{- $ip := printf "%s.%s.%s.%d/32" (index $octets 0) (index $octets 1) (index $octets 2) (add $last 10) -}}
{{- if not (has $ip $out) -}}{{- $out = append $out $ip -}}{{- end -}}
{{- end -}}
{{- end -}}
{{- end -}}
{{- end -}}
{{- end -}}
{{- toJson $out -}}
{{- end -}}

{{/* Pull secrets and scheduling of a pod template. */}}
{{- define "seed.scheduling" -}}
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

{{/* Egress to the receiver (or proxy) when it is named by host only (agent.receiver.cidrs empty):
any address on the port except the seed's own networks (gardenlet's gardener.seed.networks), or
the private ranges without gardenlet. One ipBlock per address family. */}}
{{- define "seed.anyAddressPeers" -}}
{{- $v4 := list -}}
{{- $v6 := list -}}
{{- $networks := include "seed.networks" . | fromJsonArray -}}
{{- if not $networks -}}
{{- $networks = list "10.0.0.0/8" "172.16.0.0/12" "192.168.0.0/16" "100.64.0.0/10" "fc00::/7" -}}
{{- end -}}
{{- range $networks -}}
{{- if contains ":" . -}}{{- $v6 = append $v6 . -}}{{- else -}}{{- $v4 = append $v4 . -}}{{- end -}}
{{- end -}}
- ipBlock:
    cidr: 0.0.0.0/0
    {{- with $v4 }}
    except: {{ toJson . }}
    {{- end }}
- ipBlock:
    cidr: ::/0
    {{- with $v6 }}
    except: {{ toJson . }}
    {{- end }}
{{- end -}}

{{/* The port of a URL: explicit, else the scheme's (https 443, http 80). */}}
{{- define "seed.urlPort" -}}
{{- $u := urlParse . -}}
{{- $parts := splitList ":" $u.host -}}
{{- if gt (len $parts) 1 -}}
{{- last $parts -}}
{{- else if eq $u.scheme "https" -}}
443
{{- else -}}
80
{{- end -}}
{{- end -}}

{{/* A comma-separated list of CIDRs from a seed annotation, each checked; fails naming the
annotation. */}}
{{- define "seed.annotationCIDRs" -}}
{{- $out := list -}}
{{- $name := index . 0 -}}
{{- range splitList "," (index . 1) -}}
{{- $cidr := trim . -}}
{{- if $cidr -}}
{{- if not (regexMatch "^([0-9]{1,3}\\.){3}[0-9]{1,3}/[0-9]{1,2}$|^[0-9a-fA-F:]+:[0-9a-fA-F:]*/[0-9]{1,3}$" $cidr) -}}
{{- fail (printf "seed annotation %s: %q is not a CIDR" $name $cidr) -}}
{{- end -}}
{{- $out = append $out $cidr -}}
{{- end -}}
{{- end -}}
{{- toJson $out -}}
{{- end -}}

{{/* What differs per seed, resolved once (JSON): the receiver (url, cidrs, port), the egress
proxy (url, cidrs, port; url empty: none), extra DNS addresses and the seed kube-apiserver's
addresses. In order of precedence:
  1. the Seed's own annotations slo-gateway.gardener.cloud/{receiver-url, receiver-cidrs,
     egress-proxy-url, egress-proxy-cidrs, dns-cidrs, apiserver-cidrs}, which gardenlet injects
     as gardener.seed.annotations (set in the gardenlet's seedConfig.metadata.annotations);
  2. agent.receiver.byRegion[gardener.seed.region]: regional receivers from one registration;
  3. the chart's values.
Derived from gardenlet's other values elsewhere: the cluster DNS Service IP (seed.dnsCIDRs) and
the seed's networks (seed.anyAddressPeers). */}}
{{- define "seed.perSeed" -}}
{{- $seed := dict -}}
{{- if and .Values.gardener (kindIs "map" .Values.gardener) (kindIs "map" .Values.gardener.seed) -}}
{{- $seed = .Values.gardener.seed -}}
{{- end -}}
{{- $ann := $seed.annotations | default dict -}}
{{- $key := "slo-gateway.gardener.cloud/" -}}
{{- $receiver := dict "url" .Values.agent.receiver.url "cidrs" .Values.agent.receiver.cidrs "port" (int .Values.agent.receiver.port) -}}
{{- with get (.Values.agent.receiver.byRegion | default dict) ($seed.region | default "") -}}
{{- $_ := set $receiver "url" (required "agent.receiver.byRegion.<region>.url is required" .url) -}}
{{- $_ := set $receiver "cidrs" (.cidrs | default list) -}}
{{- $_ := set $receiver "port" (include "seed.urlPort" .url | int) -}}
{{- end -}}
{{- with get $ann (print $key "receiver-url") -}}
{{- if not (regexMatch "^https://[^/@]+/" .) -}}
{{- fail (printf "seed annotation %sreceiver-url: %q is not https://<host>/<path>" $key .) -}}
{{- end -}}
{{- $_ := set $receiver "url" . -}}
{{- $_ := set $receiver "port" (include "seed.urlPort" . | int) -}}
{{- $_ := set $receiver "cidrs" list -}}
{{- end -}}
{{- with get $ann (print $key "receiver-cidrs") -}}
{{- $_ := set $receiver "cidrs" (include "seed.annotationCIDRs" (list (print $key "receiver-cidrs") .) | fromJsonArray) -}}
{{- end -}}
{{- $proxy := dict "url" .Values.agent.proxy.url "cidrs" .Values.agent.proxy.cidrs "port" (int .Values.agent.proxy.port) -}}
{{- with get $ann (print $key "egress-proxy-url") -}}
{{- if not (regexMatch "^https?://[^/@]+/?$" .) -}}
{{- fail (printf "seed annotation %segress-proxy-url: %q is not http(s)://<host>:<port> (no credentials: Seed annotations are readable in the garden)" $key .) -}}
{{- end -}}
{{- $cidrs := include "seed.annotationCIDRs" (list (print $key "egress-proxy-cidrs") (get $ann (print $key "egress-proxy-cidrs"))) | fromJsonArray -}}
{{- if not $cidrs -}}
{{- fail (printf "seed annotation %segress-proxy-url needs %segress-proxy-cidrs (the proxy's addresses, for the NetworkPolicy)" $key $key) -}}
{{- end -}}
{{- $proxy = dict "url" . "cidrs" $cidrs "port" (include "seed.urlPort" . | int) -}}
{{- end -}}
{{- $dns := include "seed.annotationCIDRs" (list (print $key "dns-cidrs") (get $ann (print $key "dns-cidrs"))) | fromJsonArray -}}
{{- $apiServer := .Values.shootRules.apiServerCIDRs -}}
{{- with get $ann (print $key "apiserver-cidrs") -}}
{{- $apiServer = include "seed.annotationCIDRs" (list (print $key "apiserver-cidrs") .) | fromJsonArray -}}
{{- end -}}
{{- toJson (dict "receiver" $receiver "proxy" $proxy "dnsCIDRs" $dns "apiServerCIDRs" $apiServer) -}}
{{- end -}}
