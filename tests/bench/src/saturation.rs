//! Which process bounded a figure: the server or the load generator,
//! decided from the CPU each one used over the measured window.

/// The rule, as the report states it.
pub const RULE: &str = "from the CPU each process used over the window, in cores; N = the machine's cores \
minus what other processes used over the same window (the machine is shared; `/proc/stat`): \
**generator** when the generator used ≥ 85 % of what it can use at all (h2load `-t 1`: one core; \
`tessera-bench`: N); else **server** when the server did (Redis: one core; Tessera, the no-op, \
OpenBao: N); else, when server + generator used ≥ 85 % of N, the larger of the two \
(the machine is full and the larger consumer sets the rate); else **neither** (both had CPU to spare: \
latency-, I/O- or lock-bound). Where the server's CPU is not read (PostgreSQL), only the generator's counts";

/// The share of its cap at which a process counts as saturated: not 100 %,
/// since a loaded event loop still waits between wake-ups and the window
/// includes connection set-up.
const SATURATED: f64 = 0.85;

/// The process that bounded a figure.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Saturated {
    Server,
    Generator,
    Neither,
}

impl Saturated {
    /// The word in the report's "saturated" column.
    pub fn word(self) -> &'static str {
        match self {
            Saturated::Server => "server",
            Saturated::Generator => "generator",
            Saturated::Neither => "neither",
        }
    }
}

/// CPU available to this machine's processes, in cores.
pub fn machine_cores() -> f64 {
    std::thread::available_parallelism()
        .map(|n| n.get() as f64)
        .unwrap_or(1.0)
}

/// Cores used over a window.
#[derive(Clone, Copy, Debug, Default)]
pub struct Shares {
    pub server: Option<f64>,
    pub generator: Option<f64>,
    /// Every process of the machine.
    pub machine: Option<f64>,
}

impl Shares {
    /// CPU seconds over `seconds` of wall time, as cores.
    pub fn from_seconds(
        server: Option<f64>,
        generator: Option<f64>,
        machine: Option<f64>,
        seconds: f64,
    ) -> Shares {
        Shares {
            server: server.map(|s| s / seconds),
            generator: generator.map(|s| s / seconds),
            machine: machine.map(|s| s / seconds),
        }
    }

    /// Cores used by processes other than the server and the generator.
    pub fn other(&self) -> Option<f64> {
        let ours = self.server.unwrap_or(0.0) + self.generator.unwrap_or(0.0);
        self.machine.map(|m| (m - ours).max(0.0))
    }

    /// Applies [`RULE`], given the most the server and the generator could
    /// use, in cores.
    pub fn decide(&self, server_cap: f64, generator_cap: f64) -> Saturated {
        let cores = (machine_cores() - self.other().unwrap_or(0.0)).max(0.1);
        let server = self.server.unwrap_or(0.0);
        let generator = self.generator.unwrap_or(0.0);
        if generator >= SATURATED * generator_cap.min(cores) {
            Saturated::Generator
        } else if server >= SATURATED * server_cap.min(cores) {
            Saturated::Server
        } else if server + generator >= SATURATED * cores {
            if server >= generator {
                Saturated::Server
            } else {
                Saturated::Generator
            }
        } else {
            Saturated::Neither
        }
    }
}

/// The column for several repetitions: one word when they agree, else
/// each word with its count ("server 3, generator 2").
pub fn summary(list: &[Saturated]) -> String {
    let mut sorted = list.to_vec();
    sorted.sort();
    let mut parts: Vec<(Saturated, usize)> = Vec::new();
    for s in sorted {
        match parts.last_mut() {
            Some((last, n)) if *last == s => *n += 1,
            _ => parts.push((s, 1)),
        }
    }
    match parts.as_slice() {
        [] => "–".to_owned(),
        [(s, _)] => s.word().to_owned(),
        _ => parts
            .iter()
            .map(|(s, n)| format!("{} {n}", s.word()))
            .collect::<Vec<_>>()
            .join(", "),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shares(server: f64, generator: f64, other: f64) -> Shares {
        Shares {
            server: Some(server),
            generator: Some(generator),
            machine: Some(server + generator + other),
        }
    }

    #[test]
    fn decides_from_the_shares() {
        let n = machine_cores();
        // h2load at a full core is the bound, whatever the server does.
        assert_eq!(shares(0.5, 0.95, 0.0).decide(n, 1.0), Saturated::Generator);
        // The server took (nearly) all the cores.
        assert_eq!(
            shares(0.95 * n, 0.02, 0.0).decide(n, 1.0),
            Saturated::Server
        );
        // Both had CPU to spare.
        assert_eq!(shares(0.1, 0.1, 0.0).decide(n, n), Saturated::Neither);
        // Redis's one thread is its cap.
        assert_eq!(shares(0.95, 0.1, 0.0).decide(1.0, n), Saturated::Server);
        if n >= 2.0 {
            // The machine is full and the generator used more than the server.
            let s = shares(0.4 * (n - 0.5), 0.6 * (n - 0.5), 0.5);
            assert_eq!(s.decide(n, n), Saturated::Generator);
        }
    }

    #[test]
    fn summary_counts_disagreeing_repetitions() {
        use Saturated::*;
        assert_eq!(summary(&[Server, Server]), "server");
        assert_eq!(
            summary(&[Generator, Server, Server]),
            "server 2, generator 1"
        );
        assert_eq!(summary(&[]), "–");
    }
}
