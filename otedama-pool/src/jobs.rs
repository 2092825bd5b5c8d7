//! Jobs built from block templates: the coinbase for the pool's payout, the merkle branch and
//! the `mining.notify` every session announces; kept so shares can be checked against them.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;

use otedama_core::bitcoin::ScriptBuf;
use otedama_core::{BlockTemplate, Coinbase, CoinbaseBuilder, CoinbaseError, Job, JobId, Target};
use otedama_p2p::{ShareTemplate, TemplateBase};
use otedama_stratum::{JobAnnouncement, Notify};

/// Extranonce1 bytes per session.
pub const EXTRANONCE1_SIZE: usize = 4;
/// Extranonce2 bytes the miner rolls.
pub const EXTRANONCE2_SIZE: usize = 4;

/// One announced job and everything needed to check its shares and build its block.
#[derive(Debug)]
pub struct PoolJob {
    /// The template it came from.
    pub template: Arc<BlockTemplate>,
    /// The coinbase, split around the extranonces.
    pub coinbase: Coinbase,
    /// The job in core's form, to rebuild headers from shares.
    pub job: Job,
    /// What sessions announce.
    pub announcement: JobAnnouncement,
    /// The network target: a share meeting it is a block.
    pub network_target: Target,
    /// The miner address the coinbase pays directly (SOLO), when it is not the pool's.
    pub payee: Option<String>,
    /// The transaction fees within the coinbase value, summed once per job.
    pub tx_fees: u64,
    /// On a sharechain: the share this job's coinbase belongs to. A share meeting its target
    /// goes to the sharechain as well as to the share log.
    pub side: Option<SideJob>,
}

/// The sharechain share a job mines: its template (whose coinbase the job's is), and the base
/// every miner's own version of the job is built from.
#[derive(Debug, Clone)]
pub struct SideJob {
    /// The share template, with this job's payout.
    pub template: Arc<ShareTemplate>,
    /// What every payout's template on the same tip is built from.
    pub base: Arc<TemplateBase>,
}

/// The jobs still valid for shares, newest last.
#[derive(Debug, Default)]
pub struct JobBook {
    jobs: HashMap<String, Arc<PoolJob>>,
    order: VecDeque<String>,
    counter: u64,
    /// Per base job: the jobs derived from it for one payee each, by payee.
    derived: HashMap<String, HashMap<String, Arc<PoolJob>>>,
}

/// The pool's own coinbase for `template`, paying `outputs`.
fn pool_coinbase(
    template: &BlockTemplate,
    outputs: &[(ScriptBuf, u64)],
    tag: &[u8],
) -> Result<Coinbase, CoinbaseError> {
    let height = u32::try_from(template.height).unwrap_or(u32::MAX);
    let mut builder = CoinbaseBuilder::new(height)
        .extranonce_sizes(EXTRANONCE1_SIZE, EXTRANONCE2_SIZE)
        .pool_tag(tag.to_vec());
    for (script, value) in outputs {
        builder = builder.output(script.clone(), *value);
    }
    if template.witness_commitment.is_some() {
        builder = builder.witness_root(template.witness_root());
    }
    builder.build()
}

/// Builds a job for `template` with `coinbase`.
fn build(
    template: Arc<BlockTemplate>,
    coinbase: Coinbase,
    id: String,
    clean: bool,
    ntime: u32,
    payee: Option<String>,
    side: Option<SideJob>,
) -> PoolJob {
    let height = u32::try_from(template.height).unwrap_or(u32::MAX);
    let network_target = template.target().unwrap_or(Target::ZERO);
    let ntime = ntime.max(template.mintime);
    let job = Job {
        id: JobId::new(id.clone()),
        prevhash: template.prev_hash,
        coinb1: coinbase.coinb1().to_vec(),
        coinb2: coinbase.coinb2().to_vec(),
        merkle_branch: template.merkle_branch(),
        version: template.version,
        bits: template.bits,
        time: ntime,
        clean,
        height,
        share_target: network_target,
    };
    let announcement = JobAnnouncement {
        notify: Notify {
            job_id: id,
            prevhash: template.prev_hash,
            coinb1: job.coinb1.clone(),
            coinb2: job.coinb2.clone(),
            merkle_branch: job.merkle_branch.hashes().to_vec(),
            version: template.version,
            nbits: template.bits.to_consensus(),
            ntime,
            clean_jobs: clean,
        },
        height: template.height,
    };
    let tx_fees = template
        .transactions
        .iter()
        .fold(0u64, |sum, tx| sum.saturating_add(tx.fee));
    PoolJob {
        tx_fees,
        template,
        coinbase,
        job,
        announcement,
        network_target,
        payee,
        side,
    }
}

/// How many jobs stay valid (sessions keep at most as many).
const KEEP: usize = 16;

impl JobBook {
    /// Builds the job for `template` paying `payout`; `clean` when the chain tip moved.
    pub fn make(
        &mut self,
        template: Arc<BlockTemplate>,
        payout: &ScriptBuf,
        tag: &[u8],
        clean: bool,
        ntime: u32,
    ) -> Result<Arc<PoolJob>, CoinbaseError> {
        let coinbase = pool_coinbase(&template, &[(payout.clone(), template.coinbase_value)], tag)?;
        Ok(self.insert(template, coinbase, clean, ntime, None))
    }

    /// Builds the job for `template` on a sharechain: its coinbase is `side`'s, which pays
    /// the sharechain's window; `clean` when the main chain's tip moved.
    pub fn make_side(
        &mut self,
        template: Arc<BlockTemplate>,
        side: SideJob,
        clean: bool,
        ntime: u32,
    ) -> Result<Arc<PoolJob>, CoinbaseError> {
        let coinbase = side.template.coinbase.split_at(EXTRANONCE1_SIZE)?;
        Ok(self.insert(template, coinbase, clean, ntime, Some(side)))
    }

    fn insert(
        &mut self,
        template: Arc<BlockTemplate>,
        coinbase: Coinbase,
        clean: bool,
        ntime: u32,
        side: Option<SideJob>,
    ) -> Arc<PoolJob> {
        self.counter += 1;
        let id = format!("{:x}", self.counter);
        let pool_job = Arc::new(build(
            template,
            coinbase,
            id.clone(),
            clean,
            ntime,
            None,
            side,
        ));
        if clean {
            self.jobs.clear();
            self.order.clear();
            self.derived.clear();
        }
        self.jobs.insert(id.clone(), Arc::clone(&pool_job));
        self.order.push_back(id);
        while self.order.len() > KEEP {
            if let Some(old) = self.order.pop_front() {
                self.jobs.remove(&old);
                for derived in self.derived.remove(&old).unwrap_or_default().values() {
                    self.jobs.remove(derived.job.id.as_str());
                }
            }
        }
        pool_job
    }

    /// The version of job `base_id` whose coinbase pays `outputs` for `payee` (SOLO mining),
    /// made once and kept as long as the base job; `None` when the base job is gone.
    pub fn derive(
        &mut self,
        base_id: &str,
        payee: &str,
        outputs: &[(ScriptBuf, u64)],
        tag: &[u8],
    ) -> Option<Result<Arc<PoolJob>, CoinbaseError>> {
        self.derive_with(base_id, payee, |base| {
            Ok((pool_coinbase(&base.template, outputs, tag)?, None))
        })
    }

    /// The version of sharechain job `base_id` whose share pays `script` for `payee`, made
    /// once and kept as long as the base job; `None` when the base job is gone or is not a
    /// sharechain job.
    pub fn derive_side(
        &mut self,
        base_id: &str,
        payee: &str,
        script: &ScriptBuf,
    ) -> Option<Result<Arc<PoolJob>, crate::JobError>> {
        let base = self.jobs.get(base_id)?.side.as_ref()?.base.clone();
        self.derive_with(base_id, payee, |_| {
            let template = Arc::new(base.for_payout(script.as_bytes())?);
            Ok((
                template.coinbase.split_at(EXTRANONCE1_SIZE)?,
                Some(SideJob {
                    template,
                    base: Arc::clone(&base),
                }),
            ))
        })
    }

    fn derive_with<E>(
        &mut self,
        base_id: &str,
        payee: &str,
        coinbase: impl FnOnce(&PoolJob) -> Result<(Coinbase, Option<SideJob>), E>,
    ) -> Option<Result<Arc<PoolJob>, E>> {
        let base = self.jobs.get(base_id)?.clone();
        if base.payee.is_some() {
            return None;
        }
        let own = self.derived.entry(base_id.to_owned()).or_default();
        if let Some(job) = own.get(payee) {
            return Some(Ok(Arc::clone(job)));
        }
        let id = format!("{base_id}.{:x}", own.len());
        let (coinbase, side) = match coinbase(&base) {
            Ok(made) => made,
            Err(e) => return Some(Err(e)),
        };
        let job = Arc::new(build(
            Arc::clone(&base.template),
            coinbase,
            id.clone(),
            base.job.clean,
            base.job.time,
            Some(payee.to_owned()),
            side,
        ));
        own.insert(payee.to_owned(), Arc::clone(&job));
        self.jobs.insert(id, Arc::clone(&job));
        Some(Ok(job))
    }

    /// A job by id, while it is still valid.
    pub fn get(&self, id: &str) -> Option<Arc<PoolJob>> {
        self.jobs.get(id).cloned()
    }
}
