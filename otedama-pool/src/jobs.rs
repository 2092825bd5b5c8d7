//! Jobs built from block templates: the coinbase for the pool's payout, the merkle branch and
//! the `mining.notify` every session announces; kept so shares can be checked against them.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;

use otedama_core::bitcoin::ScriptBuf;
use otedama_core::{BlockTemplate, Coinbase, CoinbaseBuilder, CoinbaseError, Job, JobId, Target};
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

/// Builds a job for `template` whose coinbase pays `outputs`.
fn build(
    template: Arc<BlockTemplate>,
    outputs: &[(ScriptBuf, u64)],
    tag: &[u8],
    id: String,
    clean: bool,
    ntime: u32,
    payee: Option<String>,
) -> Result<PoolJob, CoinbaseError> {
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
    let coinbase = builder.build()?;
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
    Ok(PoolJob {
        tx_fees,
        template,
        coinbase,
        job,
        announcement,
        network_target,
        payee,
    })
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
        let value = template.coinbase_value;
        self.counter += 1;
        let id = format!("{:x}", self.counter);
        let pool_job = Arc::new(build(
            template,
            &[(payout.clone(), value)],
            tag,
            id.clone(),
            clean,
            ntime,
            None,
        )?);
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
        Ok(pool_job)
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
        let base = self.jobs.get(base_id)?.clone();
        if base.payee.is_some() {
            return None;
        }
        let own = self.derived.entry(base_id.to_owned()).or_default();
        if let Some(job) = own.get(payee) {
            return Some(Ok(Arc::clone(job)));
        }
        let id = format!("{base_id}.{:x}", own.len());
        let job = match build(
            Arc::clone(&base.template),
            outputs,
            tag,
            id.clone(),
            base.job.clean,
            base.job.time,
            Some(payee.to_owned()),
        ) {
            Ok(job) => Arc::new(job),
            Err(e) => return Some(Err(e)),
        };
        own.insert(payee.to_owned(), Arc::clone(&job));
        self.jobs.insert(id, Arc::clone(&job));
        Some(Ok(job))
    }

    /// A job by id, while it is still valid.
    pub fn get(&self, id: &str) -> Option<Arc<PoolJob>> {
        self.jobs.get(id).cloned()
    }
}
