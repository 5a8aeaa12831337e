//! `GET /status` on the admin port: one row per seed seen, as plain HTML (no scripts, no external
//! assets) that refreshes itself every few seconds, for an operator with a browser and a
//! port-forward.

use std::fmt::Write as _;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tokio::time::Instant;

use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;

use super::api::WriteState;
use super::seeds::SeedStatus;
use common::telemetry::html_escape as escape;

/// Seconds between reloads of the page.
pub const REFRESH_SECONDS: u32 = 5;

/// Clock skew from which the page highlights it: the SLIs are evaluated per minute, so a minute
/// of skew already moves a seed's data by one evaluation.
pub const SKEW_WARNING: Duration = Duration::from_secs(60);

/// The admin routes of the receiver: `/status`.
pub fn router(state: Arc<WriteState>) -> Router {
    Router::new()
        .route("/status", get(status))
        .with_state(state)
}

async fn status(State(state): State<Arc<WriteState>>) -> impl IntoResponse {
    let rows = state.seeds.status(Instant::now());
    let html = render(&rows, state.seeds.max_series(), SystemTime::now());
    (
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            (header::CACHE_CONTROL, "no-store"),
        ],
        html,
    )
}

fn unix_time(seconds: i64) -> SystemTime {
    if seconds >= 0 {
        UNIX_EPOCH + Duration::from_secs(seconds.unsigned_abs())
    } else {
        UNIX_EPOCH - Duration::from_secs(seconds.unsigned_abs())
    }
}

fn utc(time: SystemTime) -> String {
    humantime::format_rfc3339_seconds(time).to_string()
}

/// Whole seconds between `earlier` and `later` (0 when not later), as `1h 2m 3s`.
fn age(earlier: SystemTime, later: SystemTime) -> String {
    let seconds = later.duration_since(earlier).unwrap_or_default().as_secs();
    humantime::format_duration(Duration::from_secs(seconds)).to_string()
}

/// A clock skew as `+20m (agent behind)`, highlighted from [`SKEW_WARNING`] on.
fn skew(skew_ms: Option<i64>) -> String {
    let Some(ms) = skew_ms else {
        return "unknown".into();
    };
    let magnitude = Duration::from_millis(ms.unsigned_abs());
    let text = if magnitude < Duration::from_secs(60) {
        format!("{:+.1}s", ms as f64 / 1000.0)
    } else {
        let sign = if ms < 0 { '-' } else { '+' };
        let whole = Duration::from_secs(magnitude.as_secs());
        format!("{sign}{}", humantime::format_duration(whole))
    };
    let side = match ms.signum() {
        1 => " (agent behind)",
        -1 => " (agent ahead)",
        _ => "",
    };
    if magnitude >= SKEW_WARNING {
        format!("<span class=\"warn\">{text}{side}</span>")
    } else {
        format!("{text}{side}")
    }
}

/// The page for `rows` at `now`; `max_series` is the per-seed limit (0: off).
pub fn render(rows: &[SeedStatus], max_series: usize, now: SystemTime) -> String {
    let mut html = String::with_capacity(2048 + rows.len() * 512);
    let limit = if max_series == 0 {
        "off".to_string()
    } else {
        max_series.to_string()
    };
    let _ = write!(
        html,
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta http-equiv=\"refresh\" content=\"{REFRESH_SECONDS}\">\
         <title>slo-gateway receiver status</title>\
         <style>body{{font-family:sans-serif;margin:1.5em}}\
         table{{border-collapse:collapse}}th,td{{border:1px solid #bbb;padding:.3em .6em;text-align:left}}\
         td.num{{text-align:right}}th{{background:#eee}}.warn{{color:#a00;font-weight:bold}}</style>\
         </head><body>\n<h1>slo-gateway receiver</h1>\n\
         <p>As of <span id=\"now\">{now}</span> (UTC); refreshes every {REFRESH_SECONDS} s. \
         Active-series limit per seed on this replica: <span id=\"limit\">{limit}</span>. \
         Figures are this replica's, since it started.</p>\n",
        now = utc(now),
    );
    if rows.is_empty() {
        html.push_str("<p id=\"empty\">No seed has pushed yet.</p>\n</body></html>\n");
        return html;
    }
    html.push_str(
        "<table id=\"seeds\"><thead><tr><th>Seed</th><th>Last push (UTC)</th><th>Age</th>\
         <th>Samples/s (last minute)</th><th>Active series / limit</th><th>Refused, by reason</th>\
         <th>Clock skew (receiver − agent)</th>\
         <th>Client certificate expires (UTC)</th></tr></thead><tbody>\n",
    );
    for row in rows {
        let seed = escape(&row.seed);
        let (last_push, push_age) = match row.last_push_unix_ms {
            Some(ms) => {
                let at = UNIX_EPOCH + Duration::from_millis(ms.max(0).unsigned_abs());
                (utc(at), age(at, now))
            }
            None => ("never".into(), "—".into()),
        };
        let refused = if row.refused.is_empty() {
            "none".to_string()
        } else {
            row.refused
                .iter()
                .map(|(reason, count)| {
                    format!("<span data-reason=\"{r}\">{r}: {count}</span>", r = reason)
                })
                .collect::<Vec<_>>()
                .join("<br>")
        };
        let certificate = match row.cert_not_after_unix_s {
            Some(seconds) => {
                let expiry = unix_time(seconds);
                match expiry.duration_since(now) {
                    Ok(left) if left < Duration::from_secs(7 * 86_400) => format!(
                        "{} <span class=\"warn\">(in {})</span>",
                        utc(expiry),
                        age(now, expiry)
                    ),
                    Ok(left) => format!("{} (in {} days)", utc(expiry), left.as_secs() / 86_400),
                    Err(_) => format!("{} <span class=\"warn\">(expired)</span>", utc(expiry)),
                }
            }
            None => "unknown".into(),
        };
        let active = if max_series == 0 {
            "not counted".to_string()
        } else {
            format!("{} / {max_series}", row.active_series)
        };
        let _ = writeln!(
            html,
            "<tr data-seed=\"{seed}\"><td data-field=\"seed\">{seed}</td>\
             <td data-field=\"last-push\">{last_push}</td><td data-field=\"age\">{push_age}</td>\
             <td data-field=\"samples-per-second\" class=\"num\">{rate:.1}</td>\
             <td data-field=\"active-series\" class=\"num\">{active}</td>\
             <td data-field=\"refused\">{refused}</td>\
             <td data-field=\"clock-skew\">{skew}</td>\
             <td data-field=\"certificate-expiry\">{certificate}</td></tr>",
            rate = row.samples_per_second,
            skew = skew(row.clock_skew_ms),
        );
    }
    html.push_str("</tbody></table>\n</body></html>\n");
    html
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::RejectReason;
    use remote_write::validate::Refusal;
    use std::collections::BTreeMap;

    #[test]
    fn page_shows_every_figure_escaped_and_refreshes() {
        let now = UNIX_EPOCH + Duration::from_secs(1_800_000_000);
        let rows = vec![SeedStatus {
            seed: "aws-<1>".into(),
            last_push_unix_ms: Some(1_799_999_990_000),
            clock_skew_ms: Some(-1_200_400),
            samples_per_second: 12.345,
            active_series: 42,
            refused: BTreeMap::from([
                (RejectReason::Data(Refusal::TooOld), 3),
                (RejectReason::SeriesLimit, 7),
            ]),
            cert_not_after_unix_s: Some(1_800_000_000 + 3 * 86_400),
        }];
        let html = render(&rows, 1000, now);
        assert!(html.contains("<meta http-equiv=\"refresh\" content=\"5\">"));
        assert!(html.contains("aws-&lt;1&gt;") && !html.contains("aws-<1>"));
        assert!(html.contains(">2027-01-15T07:59:50Z<"), "{html}");
        assert!(html.contains(">10s<"), "{html}");
        assert!(html.contains(">12.3<"));
        assert!(html.contains(">42 / 1000<"));
        assert!(html.contains("series_limit: 7") && html.contains("too_old: 3"));
        assert!(
            html.contains("<span class=\"warn\">-20m (agent ahead)</span>"),
            "{html}"
        );
        assert!(
            html.contains("<span class=\"warn\">(in 3days)</span>"),
            "{html}"
        );
        assert!(
            !html.contains("http://") && !html.contains("https://") && !html.contains("<script")
        );
        let empty = render(&[], 0, now);
        assert!(empty.contains("No seed has pushed yet"));
    }

    #[test]
    fn small_skews_show_tenths_and_are_not_highlighted() {
        assert_eq!(skew(None), "unknown");
        assert_eq!(skew(Some(0)), "+0.0s");
        assert_eq!(skew(Some(1_240)), "+1.2s (agent behind)");
        assert_eq!(skew(Some(-59_000)), "-59.0s (agent ahead)");
        assert_eq!(
            skew(Some(3_725_900)),
            "<span class=\"warn\">+1h 2m 5s (agent behind)</span>"
        );
    }
}
