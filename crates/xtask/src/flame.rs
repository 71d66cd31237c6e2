//! Flame graphs from `perf script` output, without a crate: each sample's call chain
//! folded into a stack (root first, the thread's name at the root, kernel frames marked
//! `_[k]`, as stackcollapse-perf does), the self time of each function, the share of
//! each kind of code (the kernel, malloc/free, then by crate: tokio, redis, actix_http,
//! ...), and an SVG flame graph (each frame as wide as its samples, the root at the
//! bottom, the whole name in a tooltip). Pure, so each step is tested on small inputs.

use std::collections::BTreeMap;
use std::fmt::Write;

/// Samples by stack, each stack root first.
pub type Folded = BTreeMap<Vec<String>, u64>;

/// What [`kind`] calls the allocator's frames and the kernel's.
pub const ALLOC: &str = "malloc/free";
pub const KERNEL: &str = "kernel";

/// Folds the output of `perf script -F comm,tid,ip,sym,dso`: a header line per sample
/// (`<comm> <tid>`), its frames indented below it leaf first, a blank line after.
pub fn fold(script: &str) -> Folded {
    let mut folded = Folded::new();
    let mut thread: Option<String> = None;
    let mut frames: Vec<String> = Vec::new();
    for line in script.lines() {
        if line.trim().is_empty() {
            finish(&mut folded, thread.take(), &mut frames);
        } else if line.starts_with(char::is_whitespace) {
            if thread.is_some() && !is_end_marker(line) {
                frames.push(frame(line.trim()));
            }
        } else {
            finish(&mut folded, thread.take(), &mut frames);
            thread = Some(thread_name(line));
        }
    }
    finish(&mut folded, thread, &mut frames);
    folded
}

fn finish(folded: &mut Folded, thread: Option<String>, frames: &mut Vec<String>) {
    if let Some(thread) = thread {
        let stack: Vec<String> = std::iter::once(thread)
            .chain(frames.drain(..).rev())
            .collect();
        *folded.entry(stack).or_default() += 1;
    }
    frames.clear();
}

/// The address DWARF unwinding ends a chain with (`ffffffffffffffff [unknown]`).
fn is_end_marker(line: &str) -> bool {
    line.split_whitespace()
        .next()
        .is_some_and(|address| address.len() == 16 && address.chars().all(|c| c == 'f'))
}

/// `<comm> <tid>` without the tid (a thread's name may hold spaces).
fn thread_name(header: &str) -> String {
    let header = header.trim();
    let name = match header.rsplit_once(char::is_whitespace) {
        Some((name, tid)) if tid.trim_end_matches(':').parse::<u64>().is_ok() => name.trim(),
        _ => header,
    };
    name.replace(';', ":")
}

/// `<address> <symbol>[+0x<offset>] (<dso>)` as a frame name: the symbol without its
/// offset or Rust hash, `[<dso file>]` when perf knows no symbol, `_[k]` after a
/// kernel function.
fn frame(line: &str) -> String {
    let rest = line
        .split_once(char::is_whitespace)
        .map_or("", |(_, rest)| rest.trim());
    let (symbol, dso) = match rest.strip_suffix(')').and_then(|r| r.rsplit_once(" (")) {
        Some((symbol, dso)) => (symbol.trim(), dso),
        None => (rest, ""),
    };
    let symbol = without_version(without_hash(without_offset(symbol)));
    let name = if symbol.is_empty() || symbol == "[unknown]" {
        let file = dso.rsplit('/').next().unwrap_or_default();
        let file = file.trim_matches(|c| c == '[' || c == ']');
        if file.is_empty() || file == "unknown" {
            "[unknown]".to_owned()
        } else {
            format!("[{file}]")
        }
    } else if dso == "[kernel.kallsyms]" || dso.starts_with("[kernel") {
        format!("{symbol}_[k]")
    } else {
        symbol.to_owned()
    };
    name.replace(';', ":")
}

fn without_offset(symbol: &str) -> &str {
    match symbol.rsplit_once('+') {
        Some((name, offset))
            if offset.strip_prefix("0x").is_some_and(|hex| {
                !hex.is_empty() && hex.chars().all(|c| c.is_ascii_hexdigit())
            }) =>
        {
            name
        }
        _ => symbol,
    }
}

/// Without a symbol version (`cfree@GLIBC_2.2.5`: `cfree`).
fn without_version(symbol: &str) -> &str {
    match symbol.split_once('@') {
        Some((name, version)) if version.starts_with("GLIBC") || version.starts_with('@') => name,
        _ => symbol,
    }
}

/// Without a legacy Rust mangling hash (`::h` and 16 hex digits).
fn without_hash(symbol: &str) -> &str {
    match symbol.rsplit_once("::h") {
        Some((name, hash)) if hash.len() == 16 && hash.chars().all(|c| c.is_ascii_hexdigit()) => {
            name
        }
        _ => symbol,
    }
}

/// The folded stacks as text, one `frame;frame;... count` a line (what inferno and
/// flamegraph.pl read).
pub fn folded_text(folded: &Folded) -> String {
    folded
        .iter()
        .map(|(stack, n)| format!("{} {n}\n", stack.join(";")))
        .collect()
}

pub fn total(folded: &Folded) -> u64 {
    folded.values().sum()
}

/// Samples by the function they were in (the leaf), most first, ties by name.
pub fn self_time(folded: &Folded) -> Vec<(String, u64)> {
    let mut by_leaf: BTreeMap<&str, u64> = BTreeMap::new();
    for (stack, n) in folded {
        if let Some(leaf) = stack.last() {
            *by_leaf.entry(leaf).or_default() += n;
        }
    }
    most_first(by_leaf)
}

/// Samples by the kind of code they were in ([`kind`]), most first.
pub fn kinds(folded: &Folded) -> Vec<(String, u64)> {
    let mut by_kind: BTreeMap<&str, u64> = BTreeMap::new();
    for (stack, n) in folded {
        *by_kind.entry(kind(stack)).or_default() += n;
    }
    most_first(by_kind)
}

fn most_first(counts: BTreeMap<&str, u64>) -> Vec<(String, u64)> {
    let mut counts: Vec<(String, u64)> = counts
        .into_iter()
        .map(|(name, n)| (name.to_owned(), n))
        .collect();
    counts.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    counts
}

/// The kind of code a sample (root first) was in: [`KERNEL`] when its leaf is a kernel
/// function, else, from the leaf up, [`ALLOC`] at the first allocator frame or the
/// crate of the first Rust frame outside std, core and alloc (a libc `memcpy` counts
/// for its caller); `other` when there is none.
pub fn kind(stack: &[String]) -> &str {
    if stack.last().is_some_and(|leaf| leaf.ends_with("_[k]")) {
        return KERNEL;
    }
    for frame in stack.iter().skip(1).rev() {
        if is_alloc(frame) {
            return ALLOC;
        }
        if let Some(krate) = crate_of(frame) {
            return krate;
        }
    }
    "other"
}

fn is_alloc(frame: &str) -> bool {
    const NAMES: [&str; 14] = [
        "malloc",
        "free",
        "realloc",
        "calloc",
        "cfree",
        "_int_malloc",
        "_int_free",
        "_int_realloc",
        "malloc_consolidate",
        "unlink_chunk",
        "__rust_alloc",
        "__rust_dealloc",
        "__rust_realloc",
        "__rust_alloc_zeroed",
    ];
    NAMES.contains(&frame)
        || frame.starts_with("__libc_malloc")
        || frame.starts_with("__libc_free")
        || frame.starts_with("__libc_calloc")
        || frame.starts_with("__libc_realloc")
        || frame.starts_with("_int_free")
        || frame.starts_with("tcache_")
        || frame.starts_with("alloc::alloc::")
        || frame.starts_with("__rdl_")
}

/// The crate of a Rust function (`<redis::aio::X as tokio::io::AsyncRead>::poll_read`:
/// `redis`), `None` for std, core and alloc and for what is not Rust.
fn crate_of(frame: &str) -> Option<&str> {
    let path = frame.trim_start_matches('<');
    let (krate, _) = path.split_once("::")?;
    let plain = !krate.is_empty() && krate.chars().all(|c| c.is_alphanumeric() || c == '_');
    (plain && !matches!(krate, "std" | "core" | "alloc")).then_some(krate)
}

/// One frame of the graph: `depth` 0 is the root (every sample), 1 the threads.
#[derive(Debug, Clone, PartialEq)]
pub struct Frame {
    pub name: String,
    pub depth: usize,
    /// Samples before it at its depth (its left edge).
    pub start: u64,
    pub samples: u64,
}

/// The frames of the graph, each frame of the stacks that share a prefix merged, in
/// the stacks' (alphabetical) order.
pub fn layout(folded: &Folded) -> Vec<Frame> {
    let mut frames = vec![Frame {
        name: "all".into(),
        depth: 0,
        start: 0,
        samples: total(folded),
    }];
    // The frames of the previous stack still open: their index in `frames`.
    let mut open: Vec<usize> = Vec::new();
    let mut previous: &[String] = &[];
    let mut x = 0;
    for (stack, n) in folded {
        let shared = previous
            .iter()
            .zip(stack)
            .take_while(|(a, b)| a == b)
            .count();
        open.truncate(shared);
        for &index in &open {
            frames[index].samples += n;
        }
        for (depth, name) in stack.iter().enumerate().skip(shared) {
            open.push(frames.len());
            frames.push(Frame {
                name: name.clone(),
                depth: depth + 1,
                start: x,
                samples: *n,
            });
        }
        previous = stack;
        x += n;
    }
    frames
}

const WIDTH: f64 = 1200.0;
const PAD: f64 = 10.0;
const ROW: f64 = 16.0;
const TOP: f64 = 56.0;
/// Frames narrower than this (pixels) are left out, as flamegraph.pl does.
const MIN_WIDTH: f64 = 0.2;

/// The flame graph of `folded` as SVG, `title` and a line of `notes` above it.
pub fn svg(folded: &Folded, title: &str, notes: &str) -> String {
    let frames = layout(folded);
    let total = frames[0].samples.max(1) as f64;
    let scale = (WIDTH - 2.0 * PAD) / total;
    let depth = frames.iter().map(|f| f.depth).max().unwrap_or(0);
    let height = TOP + (depth + 1) as f64 * ROW + PAD;
    let mut out = format!(
        r##"<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{height}" viewBox="0 0 {WIDTH} {height}" font-family="Verdana, sans-serif" font-size="12">
<rect x="0" y="0" width="{WIDTH}" height="{height}" fill="#f8f8f0"/>
<text x="{mid}" y="22" text-anchor="middle" font-size="17">{title}</text>
<text x="{mid}" y="42" text-anchor="middle" font-size="12" fill="#555">{notes}</text>
"##,
        mid = WIDTH / 2.0,
        title = escape(title),
        notes = escape(notes),
    );
    for frame in &frames {
        let w = frame.samples as f64 * scale;
        if w < MIN_WIDTH {
            continue;
        }
        let x = PAD + frame.start as f64 * scale;
        let y = TOP + (depth - frame.depth) as f64 * ROW;
        let (r, g, b) = color(&frame.name);
        let share = 100.0 * frame.samples as f64 / total;
        let _ = write!(
            out,
            "<g><title>{} ({} samples, {share:.2}%)</title><rect x=\"{x:.1}\" y=\"{y:.1}\" width=\"{w:.1}\" height=\"{h:.1}\" rx=\"2\" fill=\"rgb({r},{g},{b})\"/>",
            escape(&frame.name),
            frame.samples,
            h = ROW - 1.0,
        );
        let fits = ((w - 6.0) / 7.0).floor();
        if fits >= 3.0 {
            let _ = write!(
                out,
                "<text x=\"{:.1}\" y=\"{:.1}\">{}</text>",
                x + 3.0,
                y + ROW - 4.5,
                escape(&truncated(&frame.name, fits as usize))
            );
        }
        out.push_str("</g>\n");
    }
    out + "</svg>\n"
}

/// `name`, or its first characters and `..` to fit in `chars`.
fn truncated(name: &str, chars: usize) -> String {
    if name.chars().count() <= chars {
        name.to_owned()
    } else {
        name.chars()
            .take(chars.saturating_sub(2))
            .collect::<String>()
            + ".."
    }
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// A frame's colour by the kind of code it is: the kernel orange, the allocator red,
/// tokio and mio blue, redis green, actix purple, the rest warm shades of its name.
fn color(name: &str) -> (u8, u8, u8) {
    let hash = name
        .bytes()
        .fold(2166136261u32, |h, b| (h ^ b as u32).wrapping_mul(16777619));
    let vary = |span: u32| (hash % span) as u8;
    if name.ends_with("_[k]") {
        (240, 150 + vary(40), 40)
    } else if is_alloc(name) {
        (230, 60 + vary(30), 60)
    } else {
        match crate_of(name) {
            Some("tokio" | "mio") => (90 + vary(40), 150 + vary(30), 230),
            Some("redis") => (80 + vary(30), 190 + vary(40), 90),
            Some(k) if k.starts_with("actix") => (170 + vary(30), 120, 220),
            _ => (220 + vary(35), 100 + vary(130), 30 + vary(30)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SCRIPT: &str = "\
tokio-runtime-w 4242 
\t    7f01 _int_malloc+0x41 (/usr/lib/x86_64-linux-gnu/libc.so.6)
\t    5501 alloc::raw_vec::RawVec<T,A>::grow_one (/srv/purchase-service)
\t    5502 <redis::aio::Conn as tokio::io::AsyncRead>::poll_read::h0123456789abcdef (/srv/purchase-service)
\t    5503 tokio::runtime::task::raw::poll+0x1f (/srv/purchase-service)

tokio-runtime-w 4243 
\t ffffffff8101 tcp_sendmsg+0x10 ([kernel.kallsyms])
\t    5504 mio::net::tcp::stream::TcpStream::write (/srv/purchase-service)
\t    5503 tokio::runtime::task::raw::poll+0x2a (/srv/purchase-service)
\tffffffffffffffff [unknown] ([unknown])

actix-rt|system:0 77 
\t    7f02 __memmove_avx_unaligned_erms (/usr/lib/x86_64-linux-gnu/libc.so.6)
\t    5505 serde_json::de::from_slice (/srv/purchase-service)
\t       0 [unknown] ([unknown])

tokio-runtime-w 4242 
\t    7f04 cfree@GLIBC_2.2.5 (/usr/lib/x86_64-linux-gnu/libc.so.6)
\t    5503 tokio::runtime::task::raw::poll (/srv/purchase-service)

tokio-runtime-w 4242 
\t    7f03 [unknown] (/usr/lib/x86_64-linux-gnu/libc.so.6)
\t    5503 tokio::runtime::task::raw::poll (/srv/purchase-service)
";

    fn stack(frames: &[&str]) -> Vec<String> {
        frames.iter().map(|f| f.to_string()).collect()
    }

    #[test]
    fn perf_script_folds_into_root_first_stacks_named_plainly() {
        let folded = fold(SCRIPT);
        assert_eq!(
            folded,
            Folded::from([
                (
                    stack(&[
                        "tokio-runtime-w",
                        "tokio::runtime::task::raw::poll",
                        "<redis::aio::Conn as tokio::io::AsyncRead>::poll_read",
                        "alloc::raw_vec::RawVec<T,A>::grow_one",
                        "_int_malloc",
                    ]),
                    1
                ),
                (
                    stack(&[
                        "tokio-runtime-w",
                        "tokio::runtime::task::raw::poll",
                        "mio::net::tcp::stream::TcpStream::write",
                        "tcp_sendmsg_[k]",
                    ]),
                    1
                ),
                (
                    stack(&[
                        "actix-rt|system:0",
                        "[unknown]",
                        "serde_json::de::from_slice",
                        "__memmove_avx_unaligned_erms",
                    ]),
                    1
                ),
                (
                    stack(&[
                        "tokio-runtime-w",
                        "tokio::runtime::task::raw::poll",
                        "[libc.so.6]",
                    ]),
                    1
                ),
                (
                    stack(&[
                        "tokio-runtime-w",
                        "tokio::runtime::task::raw::poll",
                        "cfree",
                    ]),
                    1
                ),
            ])
        );
        assert_eq!(total(&folded), 5);
        assert!(
            folded_text(&folded)
                .contains("tokio-runtime-w;tokio::runtime::task::raw::poll;[libc.so.6] 1\n")
        );
    }

    #[test]
    fn self_time_is_by_leaf_and_kinds_by_the_nearest_known_code() {
        let mut folded = fold(SCRIPT);
        *folded
            .get_mut(&stack(&[
                "tokio-runtime-w",
                "tokio::runtime::task::raw::poll",
                "[libc.so.6]",
            ]))
            .unwrap() = 3;
        assert_eq!(self_time(&folded)[0], ("[libc.so.6]".to_owned(), 3));
        assert_eq!(self_time(&folded).len(), 5);
        assert_eq!(
            kinds(&folded),
            [
                ("tokio".to_owned(), 3),
                (ALLOC.to_owned(), 2),
                (KERNEL.to_owned(), 1),
                ("serde_json".to_owned(), 1),
            ]
        );
        assert_eq!(kind(&stack(&["t", "[unknown]"])), "other");
        assert_eq!(
            crate_of("<actix_http::h1::Dispatcher<T> as core::Future>::poll"),
            Some("actix_http")
        );
        assert_eq!(crate_of("core::ptr::drop_in_place<x>"), None);
    }

    #[test]
    fn stacks_sharing_a_prefix_share_its_frames() {
        let folded = Folded::from([
            (stack(&["t", "a", "b"]), 2),
            (stack(&["t", "a", "c"]), 1),
            (stack(&["u", "d"]), 1),
        ]);
        let frame = |name: &str, depth, start, samples| Frame {
            name: name.into(),
            depth,
            start,
            samples,
        };
        assert_eq!(
            layout(&folded),
            [
                frame("all", 0, 0, 4),
                frame("t", 1, 0, 3),
                frame("a", 2, 0, 3),
                frame("b", 3, 0, 2),
                frame("c", 3, 2, 1),
                frame("u", 1, 3, 1),
                frame("d", 2, 3, 1),
            ]
        );
        assert_eq!(layout(&Folded::new()), [frame("all", 0, 0, 0)]);
    }

    #[test]
    fn the_svg_puts_the_root_at_the_bottom_with_every_name_in_a_tooltip() {
        let folded = Folded::from([
            (stack(&["t", "<a as b>::poll"]), 3),
            (stack(&["t", "tiny"]), 1),
        ]);
        let svg = svg(&folded, "Profile & more", "notes");
        assert!(svg.starts_with("<svg"), "{svg}");
        assert!(svg.trim_end().ends_with("</svg>"));
        assert!(svg.contains("Profile &amp; more"));
        assert!(svg.contains("<title>&lt;a as b&gt;::poll (3 samples, 75.00%)</title>"));
        assert!(svg.contains("<title>all (4 samples, 100.00%)</title>"));
        // Three rows: all at the bottom (y = TOP + 2 rows), t above it, the leaves on top.
        assert!(
            svg.contains(r#"<rect x="10.0" y="88.0" width="1180.0""#),
            "{svg}"
        );
        assert!(
            svg.contains(r#"<rect x="10.0" y="56.0" width="885.0""#),
            "{svg}"
        );
        assert!(
            svg.contains(r#"<rect x="895.0" y="56.0" width="295.0""#),
            "{svg}"
        );
        assert_eq!(truncated("abcdefgh", 5), "abc..");
        assert_eq!(truncated("abc", 5), "abc");
    }
}
