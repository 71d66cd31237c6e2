//! A profile of purchase-service under load: `perf record` attached to it during a
//! repeat of the straight-at-purchase-service load (the measured run itself stays
//! unprofiled, so that perf's cost is in no figure of the table), then `perf script`
//! folded into `flame-purchase-service.folded` and drawn as
//! `flame-purchase-service.svg` ([`crate::flame`]), and the report's section: the
//! functions with the most self time and the share of each kind of code. Where perf
//! cannot profile (missing, or refused by `perf_event_paranoid`), the report says why
//! and the bench goes on.

use super::report::Ordered;
use crate::{flame, process};
use serde::Serialize;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub const FREQUENCY_HZ: u32 = 499;
/// Rust release binaries keep no frame pointers, so `-g` (`fp`) stacks stop after a
/// frame or two; DWARF unwinding from `.eh_frame` needs no rebuild. 8 KiB of stack per
/// sample holds the whole async stack of a tokio worker.
pub const CALL_GRAPH: &str = "dwarf,8192";
pub const SVG: &str = "flame-purchase-service.svg";
pub const FOLDED: &str = "flame-purchase-service.folded";
const DATA: &str = "perf-purchase-service.data";
/// Functions listed by self time.
const TOP: usize = 10;

/// `perf record` attached to a process until [`Recording::stop`].
pub struct Recording {
    child: Child,
    data: PathBuf,
    stderr: PathBuf,
}

impl Recording {
    /// Starts recording `pid`; why not when perf is missing or exits at once.
    pub fn start(pid: i32, dir: &Path) -> Result<Self, String> {
        let data = dir.join(DATA);
        let stderr = dir.join("perf-record.log");
        let log = std::fs::File::create(&stderr).map_err(|e| e.to_string())?;
        let child = Command::new("perf")
            .args(["record", "-q", "--no-buildid", "-F"])
            .arg(FREQUENCY_HZ.to_string())
            .args(["--call-graph", CALL_GRAPH, "-p"])
            .arg(pid.to_string())
            .arg("-o")
            .arg(&data)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .map_err(|e| format!("perf could not be started ({e}); install linux-perf"))?;
        let mut recording = Recording {
            child,
            data,
            stderr,
        };
        // perf refuses (paranoid level, no such pid) within a moment.
        std::thread::sleep(Duration::from_millis(500));
        if let Ok(Some(status)) = recording.child.try_wait() {
            return Err(recording.failure(&format!("perf record exited at once ({status})")));
        }
        Ok(recording)
    }

    /// Stops the recording (SIGINT, as Ctrl-C; perf writes its data, then ends by the
    /// same signal); the data file and the CPU seconds perf itself spent recording.
    pub fn stop(mut self) -> Result<(PathBuf, f64), String> {
        let pid = self.child.id() as i32;
        let cpu_s = process::cpu_ticks(pid) as f64 / process::ticks_per_second();
        process::signal(pid, libc::SIGINT);
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            match self.child.try_wait() {
                Ok(Some(status)) if status.success() || status.signal() == Some(libc::SIGINT) => {
                    break;
                }
                Ok(Some(status)) => {
                    return Err(self.failure(&format!("perf record failed ({status})")));
                }
                Ok(None) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(100))
                }
                _ => {
                    let _ = self.child.kill();
                    let _ = self.child.wait();
                    return Err("perf record did not stop within 60 s".into());
                }
            }
        }
        Ok((self.data, cpu_s))
    }

    /// `what`, perf's last words and the paranoid level.
    fn failure(&self, what: &str) -> String {
        let said = std::fs::read_to_string(&self.stderr).unwrap_or_default();
        let last = said
            .lines()
            .map(str::trim)
            .rfind(|l| !l.is_empty())
            .unwrap_or("nothing on stderr");
        format!(
            "{what}: {last} (kernel.perf_event_paranoid {})",
            paranoid().map_or("unknown".into(), |level| level.to_string())
        )
    }
}

fn paranoid() -> Option<i32> {
    std::fs::read_to_string("/proc/sys/kernel/perf_event_paranoid")
        .ok()?
        .trim()
        .parse()
        .ok()
}

/// Folds the recording with `perf script` into `dir` (the folded stacks and the flame
/// graph) and removes the (large) data file; the stacks.
pub fn fold(data: &Path, dir: &Path, title: &str, notes: &str) -> Result<flame::Folded, String> {
    let script = Command::new("perf")
        // Without --no-inline perf runs addr2line for every address: a minute instead
        // of a second.
        .args(["script", "--no-inline", "-F", "comm,tid,ip,sym,dso", "-i"])
        .arg(data)
        .stderr(Stdio::null())
        .output()
        .map_err(|e| format!("perf script could not be started: {e}"))?;
    let _ = std::fs::remove_file(data);
    if !script.status.success() {
        return Err(format!("perf script failed ({})", script.status));
    }
    let folded = flame::fold(&String::from_utf8_lossy(&script.stdout));
    if folded.is_empty() {
        return Err("perf recorded no samples".into());
    }
    let write = |name: &str, text: String| {
        std::fs::write(dir.join(name), text).map_err(|e| format!("writing {name}: {e}"))
    };
    write(FOLDED, flame::folded_text(&folded))?;
    write(SVG, flame::svg(&folded, title, notes))?;
    Ok(folded)
}

/// The profile as `profile.json` has it and the report shows it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Profile {
    /// The perf command, `<pid>` for purchase-service's.
    pub command: String,
    pub concurrency: usize,
    pub seconds: f64,
    /// Purchases/s of the profiled load and of the same load unprofiled.
    pub ok_per_s: f64,
    pub unprofiled_ok_per_s: f64,
    /// CPU seconds perf record itself spent during the load.
    pub perf_cpu_s: f64,
    pub samples: u64,
    /// The functions with the most self time, share of the samples.
    pub top_self: Vec<(String, f64)>,
    /// Each kind of code's share of the samples ([`flame::kind`]), most first.
    pub kinds: Vec<(String, f64)>,
    /// Why there is no profile, when there is none.
    pub unavailable: Option<String>,
}

impl Profile {
    pub fn command() -> String {
        format!("perf record -F {FREQUENCY_HZ} --call-graph {CALL_GRAPH} -p <purchase-service>")
    }

    /// The profile of one load from its stacks, or why there is none.
    pub fn new(
        concurrency: usize,
        load: &loadgen::Summary,
        unprofiled_ok_per_s: f64,
        recorded: Result<(flame::Folded, f64), String>,
    ) -> Self {
        let mut profile = Profile {
            command: Self::command(),
            concurrency,
            seconds: load.duration_s,
            ok_per_s: load.ok_per_s,
            unprofiled_ok_per_s,
            perf_cpu_s: 0.0,
            samples: 0,
            top_self: Vec::new(),
            kinds: Vec::new(),
            unavailable: None,
        };
        match recorded {
            Ok((folded, perf_cpu_s)) => {
                let samples = flame::total(&folded);
                let share = |(name, n): (String, u64)| (name, n as f64 / samples.max(1) as f64);
                profile.perf_cpu_s = perf_cpu_s;
                profile.samples = samples;
                profile.top_self = flame::self_time(&folded)
                    .into_iter()
                    .take(TOP)
                    .map(share)
                    .collect();
                profile.kinds = flame::kinds(&folded).into_iter().map(share).collect();
            }
            Err(why) => profile.unavailable = Some(why),
        }
        profile
    }

    fn kind_share(&self, pick: impl Fn(&str) -> bool) -> f64 {
        self.kinds
            .iter()
            .filter(|(kind, _)| pick(kind))
            .map(|(_, share)| share)
            .sum()
    }

    /// `summary.json`'s `purchase_service_profile`: `None` without a profile.
    pub fn summary_figures(&self) -> Option<Ordered<f64>> {
        if self.unavailable.is_some() {
            return None;
        }
        let round = |x: f64| (x * 1000.0).round() / 1000.0;
        Some(Ordered(vec![
            ("samples".into(), self.samples as f64),
            (
                "malloc_free_share".into(),
                round(self.kind_share(|k| k == flame::ALLOC)),
            ),
            (
                "kernel_share".into(),
                round(self.kind_share(|k| k == flame::KERNEL)),
            ),
            (
                "tokio_share".into(),
                round(self.kind_share(|k| k == "tokio" || k == "mio")),
            ),
            (
                "redis_share".into(),
                round(self.kind_share(|k| k == "redis")),
            ),
            (
                "actix_share".into(),
                round(self.kind_share(|k| k.starts_with("actix"))),
            ),
            (
                "profiled_over_unprofiled".into(),
                round(self.ok_per_s / self.unprofiled_ok_per_s.max(1e-9)),
            ),
        ]))
    }

    /// The report's section.
    pub fn markdown(&self) -> String {
        let mut lines = vec![
            String::new(),
            "## Profile of purchase-service under load".to_owned(),
            String::new(),
        ];
        let load = format!(
            "a repeat of the straight-at-purchase-service load (hot item, lua, c{}, {:.0} s)",
            self.concurrency, self.seconds
        );
        if let Some(why) = &self.unavailable {
            lines.push(format!(
                "No profile: {why}. The load ({load}) ran unprofiled; no other figure depends on it."
            ));
            return lines.join("\n") + "\n";
        }
        lines.extend([
            format!(
                "`{}` during {load}: {} samples. That load made {:.0} purchases/s against {:.0} unprofiled ({:.2}×); perf itself used {:.2} CPU s. Folded stacks: `{FOLDED}`.",
                self.command,
                self.samples,
                self.ok_per_s,
                self.unprofiled_ok_per_s,
                self.ok_per_s / self.unprofiled_ok_per_s.max(1e-9),
                self.perf_cpu_s
            ),
            String::new(),
            format!("![Flame graph of purchase-service under load]({SVG})"),
            String::new(),
            "| function (self time) | share |".into(),
            "|---|---|".into(),
        ]);
        for (name, share) in &self.top_self {
            let name: String = if name.chars().count() > 120 {
                name.chars().take(117).collect::<String>() + "..."
            } else {
                name.clone()
            };
            lines.push(format!(
                "| `{}` | {:.1} % |",
                name.replace('|', "\\|").replace('`', "'"),
                share * 100.0
            ));
        }
        let kinds: Vec<String> = self
            .kinds
            .iter()
            .filter(|(_, share)| *share >= 0.005)
            .map(|(kind, share)| format!("{kind} {:.1} %", share * 100.0))
            .collect();
        lines.extend([
            String::new(),
            format!(
                "Self time by kind of code (the kernel when the sample was in it, else the allocator or the crate of the nearest Rust frame outside std): {}.",
                kinds.join(", ")
            ),
        ]);
        lines.join("\n") + "\n"
    }
}

#[cfg(test)]
mod tests {
    use super::super::report::tests::load;
    use super::*;

    fn folded() -> flame::Folded {
        let stack = |frames: &[&str]| frames.iter().map(|f| f.to_string()).collect();
        flame::Folded::from([
            (
                stack(&["tokio-runtime-w", "tokio::runtime::park", "epoll_wait_[k]"]),
                5,
            ),
            (
                stack(&["tokio-runtime-w", "redis::cmd::Cmd::write", "malloc"]),
                2,
            ),
            (stack(&["tokio-runtime-w", "actix_http::h1::decode|x"]), 3),
        ])
    }

    #[test]
    fn a_profile_lists_the_top_functions_and_the_kinds_of_code() {
        let profile = Profile::new(64, &load("p", 6000.0, 50.0, 0), 6600.0, Ok((folded(), 0.3)));
        assert_eq!(profile.samples, 10);
        assert_eq!(profile.top_self[0], ("epoll_wait_[k]".to_owned(), 0.5));
        let figures = profile.summary_figures().unwrap().0;
        let figure = |key: &str| figures.iter().find(|(k, _)| k == key).unwrap().1;
        assert_eq!(figure("samples"), 10.0);
        assert_eq!(figure("kernel_share"), 0.5);
        assert_eq!(figure("malloc_free_share"), 0.2);
        assert_eq!(figure("actix_share"), 0.3);
        assert_eq!(figure("redis_share"), 0.0);
        assert_eq!(figure("profiled_over_unprofiled"), 0.909);
        let text = profile.markdown();
        assert!(
            text.contains("## Profile of purchase-service under load"),
            "{text}"
        );
        assert!(
            text.contains("--call-graph dwarf,8192 -p <purchase-service>"),
            "{text}"
        );
        assert!(
            text.contains("(hot item, lua, c64, 3 s): 10 samples"),
            "{text}"
        );
        assert!(
            text.contains("6000 purchases/s against 6600 unprofiled (0.91×)"),
            "{text}"
        );
        assert!(
            text.contains(
                "![Flame graph of purchase-service under load](flame-purchase-service.svg)"
            )
        );
        assert!(
            text.contains("| `actix_http::h1::decode\\|x` | 30.0 % |"),
            "{text}"
        );
        assert!(
            text.contains(": kernel 50.0 %, actix_http 30.0 %, malloc/free 20.0 %."),
            "{text}"
        );
    }

    #[test]
    fn without_perf_the_report_says_why_and_the_summary_has_null() {
        let profile = Profile::new(
            64,
            &load("p", 6000.0, 50.0, 0),
            6600.0,
            Err(
                "perf record exited at once: Permission denied (kernel.perf_event_paranoid 3)"
                    .into(),
            ),
        );
        assert_eq!(profile.summary_figures(), None);
        let text = profile.markdown();
        assert!(text.contains("No profile: perf record exited at once: Permission denied (kernel.perf_event_paranoid 3)."), "{text}");
        assert!(!text.contains(SVG));
    }
}
