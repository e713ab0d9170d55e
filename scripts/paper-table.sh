#!/usr/bin/env bash
# The tables of a `rein experiment paper` folder as Markdown, from the CSV files of its report:
# relative L2 error (cosine) of each KL form's exact expected gradient to ∇KL(π_θ‖π_ref) per
# injected lag (the mean over runs and tracker observations, weighted by visited positions), and the
# held-out greedy accuracy each run ended at.
#
#   scripts/paper-table.sh [OUT]    # default runs/paper (reads OUT/report/bias.csv and runs.csv)
#   FORMS=all scripts/paper-table.sh   # every implementation the tracker measured (default: the
#                                      # paper's forms and the clipped-coefficient k2)
set -euo pipefail
out=${1:-runs/paper}
forms=${FORMS:-k1_loss k2_loss k3_loss k1_reward k2_loss_sgw_token k3_loss_w_token k2_loss_coefclip_token}
bias=$out/report/bias.csv
runs=$out/report/runs.csv
for file in "$bias" "$runs"; do
    [ -f "$file" ] || { echo "paper-table: $file not found (run rein experiment paper first)" >&2; exit 1; }
done

# bias.csv: run,implementation,lag,positions,relative_error,cosine,forward_relative_error
awk -F, -v only="$forms" 'BEGIN { if (only != "all") { n = split(only, list, " "); for (i = 1; i <= n; i++) keep[list[i]] = 1 } }
    NR > 1 && (only == "all" || $2 in keep) {
        key = $2 SUBSEP $3; w[key] += $4; e[key] += $4 * $5; c[key] += $4 * $6
        if (!($2 in seenForm)) { seenForm[$2] = 1; forms[++nf] = $2 }
        if (!($3 in seenLag)) { seenLag[$3] = 1; lags[++nl] = $3 }
    }
    END {
        for (i = 1; i <= nl; i++) for (j = i + 1; j <= nl; j++) if (lags[j] + 0 < lags[i] + 0) { t = lags[i]; lags[i] = lags[j]; lags[j] = t }
        printf "| form |"; for (i = 1; i <= nl; i++) printf " lag %s |", lags[i]; print ""
        printf "|---|"; for (i = 1; i <= nl; i++) printf "---|"; print ""
        for (f = 1; f <= nf; f++) {
            printf "| %s |", forms[f]
            for (i = 1; i <= nl; i++) {
                key = forms[f] SUBSEP lags[i]
                if (w[key] > 0) printf " %.3g (%.3f) |", e[key] / w[key], c[key] / w[key]; else printf " – |"
            }
            print ""
        }
    }' "$bias"
echo
# runs.csv: run,path,steps,greedy_start,greedy_end,… ; run = FORM-lagL-seedS
awk -F, 'NR > 1 {
        name = $1; sub(/-seed[0-9]+$/, "", name); lag = name; sub(/.*-lag/, "", lag); form = name; sub(/-lag[0-9]+$/, "", form)
        key = form SUBSEP lag; sum[key] += $5; n[key]++; start += $4; runs++
        if (!(form in seenForm)) { seenForm[form] = 1; forms[++nf] = form }
        if (!(lag in seenLag)) { seenLag[lag] = 1; lags[++nl] = lag }
    }
    END {
        for (i = 1; i <= nl; i++) for (j = i + 1; j <= nl; j++) if (lags[j] + 0 < lags[i] + 0) { t = lags[i]; lags[i] = lags[j]; lags[j] = t }
        printf "| greedy held-out accuracy at the end (π_ref %.1f%%) |", 100 * start / runs
        for (i = 1; i <= nl; i++) printf " lag %s |", lags[i]; print ""
        printf "|---|"; for (i = 1; i <= nl; i++) printf "---|"; print ""
        for (f = 1; f <= nf; f++) {
            printf "| %s |", forms[f]
            for (i = 1; i <= nl; i++) { key = forms[f] SUBSEP lags[i]; if (n[key]) printf " %.1f%% |", 100 * sum[key] / n[key]; else printf " – |" }
            print ""
        }
    }' "$runs"
