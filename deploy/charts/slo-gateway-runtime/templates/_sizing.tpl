{{- /*
Sizing of the SLO Prometheus from the landscape (values `sizing`; README "Sizing", BENCHMARKS.md
"Rule cost"). n = sizing.shoots × sizing.slos / 1000 (thousands of (shoot, SLO) pairs):
  CPU request     = base.cpuMillicores + n × per1000.cpuMillicores            (millicores)
  memory request  = base.memoryMiB     + n × per1000.memoryMiB                (MiB)
  retentionSize   = max(10, n × per1000.storageGB)                            (GB)
  volume          = retentionSize × 1.2                                       (Gi)
Explicit prometheus.resources / retentionSize / storageSize win over the formula.
*/ -}}
{{- define "rt.sizing.pairsMilli" -}}
{{- mul (int .Values.sizing.shoots) (int .Values.sizing.slos) -}}
{{- end -}}
{{- define "rt.sizing.retentionGB" -}}
{{- $s := .Values.sizing -}}
{{- max 10 (div (mul (int (include "rt.sizing.pairsMilli" .)) (int $s.per1000.storageGB)) 1000) -}}
{{- end -}}
{{- define "rt.sizing.retentionSize" -}}
{{- .Values.prometheus.retentionSize | default (printf "%dGB" (int (include "rt.sizing.retentionGB" .))) -}}
{{- end -}}
{{- define "rt.sizing.storageSize" -}}
{{- .Values.prometheus.storageSize | default (printf "%dGi" (div (mul (int (include "rt.sizing.retentionGB" .)) 12) 10)) -}}
{{- end -}}
{{- define "rt.sizing.resources" -}}
{{- if .Values.prometheus.resources -}}
{{- toYaml .Values.prometheus.resources -}}
{{- else -}}
{{- $s := .Values.sizing -}}
{{- $pairs := int (include "rt.sizing.pairsMilli" .) -}}
requests:
  cpu: {{ printf "%dm" (add (int $s.base.cpuMillicores) (div (mul $pairs (int $s.per1000.cpuMillicores)) 1000)) }}
  memory: {{ printf "%dMi" (add (int $s.base.memoryMiB) (div (mul $pairs (int $s.per1000.memoryMiB)) 1000)) }}
{{- end -}}
{{- end -}}
