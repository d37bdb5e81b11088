//! The BPE tables the gateway counts with: built once per process, one at a time, and at
//! start-up for the encodings the catalog's models use, so their cost is paid before traffic.
//!
//! Building a table is the expensive part of a token count: about 0.2 s of a core and, while
//! it runs, about 30 MB of transient memory on top of the ~10-20 MB the table keeps (the
//! crate decompresses the vocabulary and builds a map of every token before packing them).
//! Built lazily, on the first cut stream, that transient lands on a gateway already carrying
//! its traffic and sets its peak memory; two encodings built at once would double it. So:
//! - [`warm_up`] builds the catalog's encodings in the background as the server starts (and
//!   after a reload that adds one), where the peak is the table's alone;
//! - builds are serialized by one lock, whether from the warm-up or a first use;
//! - after each build, the allocator returns the freed transient pages to the OS, so the
//!   steady state holds only the tables.

use std::sync::{Mutex, OnceLock, PoisonError};
use std::time::Instant;

use async_trait::async_trait;
use pingora::server::ShutdownWatch;
use pingora::services::background::BackgroundService;

use crate::catalog::Catalog;

/// The two BPE encodings the gateway counts with. Each table is built once per process and
/// shared by every caller (cut-stream estimates, count_tokens, Gemini embeddings); see
/// this module for when.
///
/// The `tiktoken` crate is used rather than `tiktoken-rs`: it gives the same tokens (checked on
/// about 19,000 texts, this repository's and multilingual ones), counts 2 MiB of text in about
/// 20 ms where `tiktoken-rs` takes 180-290 ms, and holds its vocabulary in one byte arena with
/// an open-addressing index instead of a map entry and a `Vec` per token, three times over.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Encoding {
    /// Every OpenAI model since GPT-4o; the approximation for models whose tokenizer is not
    /// public (Claude, Gemini).
    O200k,
    /// GPT-4 before 4o, GPT-3.5, and OpenAI's text-embedding-3 and ada-002 models.
    Cl100k,
}

/// The encoding of a model: cl100k for the families OpenAI built on it (GPT-4 before 4o,
/// GPT-3.5, the text-embedding-3 and ada-002 embeddings), o200k for everything else: every
/// OpenAI model since GPT-4o, and the approximation for models whose tokenizer is not public
/// (Claude, Gemini). So a gateway that serves current models builds one encoding, not two.
pub(crate) fn encoding_for(model: &str) -> Encoding {
    let m = model.to_ascii_lowercase();
    let gpt4_before_4o = m
        .strip_prefix("gpt-4")
        .is_some_and(|rest| rest.is_empty() || rest.starts_with('-'));
    if gpt4_before_4o
        || m.starts_with("gpt-3.5")
        || m.starts_with("text-embedding-3")
        || m.starts_with("text-embedding-ada")
    {
        Encoding::Cl100k
    } else {
        Encoding::O200k
    }
}

static O200K: OnceLock<Option<&'static tiktoken::CoreBpe>> = OnceLock::new();
static CL100K: OnceLock<Option<&'static tiktoken::CoreBpe>> = OnceLock::new();
/// Held while a table is built: at most one build's transient memory at a time.
static BUILDING: Mutex<()> = Mutex::new(());

impl Encoding {
    /// The encoding's name in OpenAI's tiktoken.
    pub(crate) fn name(self) -> &'static str {
        match self {
            Encoding::O200k => "o200k_base",
            Encoding::Cl100k => "cl100k_base",
        }
    }
}

/// The table of `encoding`, built on first use (blocking the caller for the build, about
/// 0.2 s; callers on the request path are on the offload pool).
pub(crate) fn table(encoding: Encoding) -> Option<&'static tiktoken::CoreBpe> {
    let slot = match encoding {
        Encoding::O200k => &O200K,
        Encoding::Cl100k => &CL100K,
    };
    *slot.get_or_init(|| {
        let _one_build_at_a_time = BUILDING.lock().unwrap_or_else(PoisonError::into_inner);
        let started = Instant::now();
        let table = tiktoken::get_encoding(encoding.name());
        // The build freed ~30 MB at once, which the rest of the gateway rarely reuses. With
        // both encodings built at start (`benches/tokenizer_memory.py`, mimalloc's purge
        // delay then at 1 s), the idle gateway held 68 MB without this and the second build
        // peaked at 68 MB; with it, 42 MB, and the peak was the first build's, 58 MB.
        crate::allocator::return_freed_memory();
        log::info!(
            "tokenizer {} built in {} ms",
            encoding.name(),
            started.elapsed().as_millis()
        );
        table
    })
}

/// The encodings the estimates for `catalog`'s models use: those of every model name and
/// every deployment's upstream name (a cut stream is counted with the upstream model's).
pub(crate) fn needed_by(catalog: &Catalog) -> Vec<Encoding> {
    let mut needed = Vec::new();
    for model in catalog.all() {
        let upstream = model
            .deployments
            .iter()
            .filter_map(|d| d.upstream_model.as_deref());
        for name in std::iter::once(model.name.as_str()).chain(upstream) {
            let encoding = encoding_for(name);
            if !needed.contains(&encoding) {
                needed.push(encoding);
            }
        }
    }
    needed.sort();
    needed
}

/// Builds `encodings`' tables on a background thread, one after another. Returns at once.
/// Call it from a running service, not before the server forks into a daemon: a thread
/// started before the fork does not exist after it.
pub(crate) fn warm_up(encodings: Vec<Encoding>) {
    let spawned = std::thread::Builder::new()
        .name("tokenizer-warm-up".into())
        .spawn(move || {
            for encoding in encodings {
                table(encoding);
            }
        });
    if let Err(e) = spawned {
        log::warn!("tokenizers will be built on first use: cannot start their warm-up: {e}");
    }
}

/// The server's start-up warm-up, as a Pingora background service (which runs after the
/// daemon fork).
pub(crate) struct WarmUp(pub(crate) Vec<Encoding>);

#[async_trait]
impl BackgroundService for WarmUp {
    async fn start(&self, _shutdown: ShutdownWatch) {
        warm_up(self.0.clone());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;

    fn catalog(models: &str) -> Catalog {
        let text = format!(
            "[server]\nlisten = \"127.0.0.1:9\"\n\
             [providers.openai]\nkind = \"openai\"\nbase_url = \"http://127.0.0.1:9\"\n{models}"
        );
        Config::parse(&text, "test.toml", &|_| None)
            .unwrap_or_else(|e| panic!("{e}"))
            .catalog
    }

    #[tokio::test]
    async fn needs_the_encodings_of_model_and_upstream_names() {
        let current = catalog(
            "[models.\"gpt-4o\"]\nprovider = \"openai\"\n\
             [models.\"claude-*\"]\nprovider = \"openai\"\n",
        );
        assert_eq!(needed_by(&current), vec![Encoding::O200k]);
        let renamed = catalog(
            "[models.\"fast\"]\nprovider = \"openai\"\nupstream_model = \"gpt-3.5-turbo\"\n",
        );
        assert_eq!(needed_by(&renamed), vec![Encoding::O200k, Encoding::Cl100k]);
    }
}
