// Every label of the console in Chinese and English. The choice is remembered in localStorage;
// the first visit follows the browser's language. t(key, params) fills {name} placeholders.

const STORE = 'credence.lang';

const zh = {
  skip: '跳到正文', brand: 'Credence 科技金融信用账本', 'nav.search': '查询', 'nav.chain': '账本', 'nav.portfolio': '组合', 'nav.ops': '节点',
  'lang.switch': 'English', loading: '加载中…', footer: '所有数据均来自账本；证明在本浏览器中校验。',
  'nav.signin': '登录', 'signin.title': '用访问密钥登录', 'signin.lead': '粘贴成员为您签发的访问密钥文件（credence keys access 生成）。请求将按 RFC 9421 签名；查询企业事实需企业授权，每次查询都记录在账本上。',
  'signin.file': '访问密钥文件', 'signin.purpose': '查询目的', 'signin.go': '登录', 'signin.out': '退出',
  'purpose.loan-application': '贷款申请', 'purpose.post-loan-monitoring': '贷后管理', 'purpose.guarantee-review': '担保审查', 'purpose.risk-pool-claim': '风险补偿申请', 'purpose.supervision': '监管',
  'session.public': '公开访问（请求未签名）', 'session.key': '访问密钥 {key}', notfound: '页面不存在', error: '错误',
  yes: '是', no: '否', 'unit.months': '{n} 个月',
  'search.title': '查询', 'search.lead': '按统一社会信用代码、专利申请号或记录编号查询账本上的信用事实。', 'search.go': '查询',
  'search.uscc': '统一社会信用代码', 'search.uscc.hint': '18 位，GB 32100-2015，含校验码，例如 914403001922038216',
  'search.patent': '专利申请号', 'search.patent.hint': 'CN + 12 位数字 + 校验位，例如 CN202310123456.6',
  'search.record': '记录编号', 'search.record.hint': '64 位十六进制（记录正文的 SHA-256）',
  'err.required': '请填写此项。', 'err.whitespace': '不能包含空格。',
  'err.uscc.length': '统一社会信用代码应为 18 位，现为 {got} 位。',
  'err.uscc.char': '第 {pos} 位“{ch}”不是有效字符（只允许数字和除 I、O、Z、S、V 外的大写字母）。',
  'err.uscc.division': '第 {pos} 位“{ch}”应为数字（第 3–8 位是行政区划码）。',
  'err.uscc.check': '校验码错误：第 18 位是“{found}”，应为“{expected}”。',
  'err.patent.prefix': '前缀“{prefix}”无效：专利申请号以 CN 开头或直接以 12 位数字开头。',
  'err.patent.dots': '只能有一个小数点（校验位之前）。', 'err.patent.char': '第 {pos} 位“{ch}”应为数字。',
  'err.patent.legacy': '不支持 2003 年以前的 8 位申请号，请输入 12 位格式，例如 CN200310102344.5。',
  'err.patent.digits': '应为 12 位数字，现为 {got} 位。', 'err.patent.checkchar': '校验位应为一位数字或 X。',
  'err.patent.year': '申请年份 {year} 不在 2003–2100 之间。', 'err.patent.type': '第 5 位“{ch}”不是申请类型（1、2、3、8、9）。',
  'err.patent.check': '校验位错误：是“{found}”，应为“{expected}”。',
  'err.id.length': '记录编号应为 64 位十六进制，现为 {got} 位。', 'err.id.char': '第 {pos} 位“{ch}”不是十六进制数字。',
  'kind.rd-spend': '研发投入', 'kind.patent-valuation': '专利评估', 'kind.pledge': '专利质押', 'kind.release': '质押解除', 'kind.revoke': '撤销', 'kind.equivocation': '验证者双签证据',
  'kind.ip-pledge': '知识产权质押', 'kind.patent-status': '专利状态', 'kind.appraisal': '资产评估', 'kind.loan': '贷款', 'kind.loan-event': '贷款履约',
  'kind.risk-pool': '风险补偿资金池', 'kind.disposal': '质押物处置', 'kind.qualification': '资质认定', 'kind.access-key': '访问密钥授权',
  'kind.consent': '企业授权', 'kind.query': '查询记录', 'kind.gov-proposal': '治理提案', 'kind.gov-approval': '治理批准', 'kind.key-rotation': '密钥轮换',
  'field.recipient': '被授权机构', 'field.purpose': '用途', 'field.scope': '范围', 'field.expires_at_ms': '到期时间', 'field.reader': '查询机构',
  'field.access_key': '访问密钥', 'field.consent': '授权', 'field.read': '读取内容', 'field.holder': '持有人', 'field.scopes': '权限',
  'field.lender': '贷款行', 'field.borrower': '借款人', 'field.principal': '本金', 'field.maturity': '到期日', 'field.rate_bp': '利率（基点）',
  'field.enterprise': '企业', 'field.period': '期间', 'field.amount': '金额', 'field.category': '类别', 'field.evidence': '证据哈希',
  'field.patent': '专利', 'field.owner': '权利人', 'field.value': '评估值', 'field.method': '评估方法', 'field.valuation_date': '评估基准日',
  'field.valid_until': '有效期至', 'field.pledgor': '出质人', 'field.pledgee': '质权人', 'field.secured': '担保金额', 'field.start': '起始日',
  'field.term_months': '期限', 'field.pledge': '质押记录', 'field.target': '被撤销记录', 'field.superseded_by': '替代记录',
  'field.validator': '验证者', 'field.height': '区块高度', 'field.round': '轮次', 'field.step': '阶段', 'field.kind': '类型',
  'field.attester': '证明方', 'field.sequence': '序号', 'field.issued_at_ms': '签发时间', 'field.status': '状态',
  'field.record_status': '记录状态', 'field.leaf_index': '叶序号', 'field.origin': '日志标识', 'field.tree_size': '树大小',
  'field.block_hash': '区块哈希', 'field.chain_id': '链标识（创世哈希）', 'field.tree_root': '默克尔根', 'field.time_ms': '区块时间',
  'field.member': '成员', 'field.syncing': '同步中',
  'val.category.total': '合计', 'val.category.personnel': '人员人工', 'val.category.direct-inputs': '直接投入', 'val.category.depreciation': '折旧',
  'val.category.amortization': '无形资产摊销', 'val.category.new-product-design': '新产品设计', 'val.category.commissioned': '委托研发', 'val.category.other': '其他',
  'val.method.income': '收益法', 'val.method.market': '市场法', 'val.method.cost': '成本法',
  'val.role.bank': '银行', 'val.role.service-centre': '科技金融服务中心', 'val.role.appraiser': '评估机构',
  'val.step.proposal': '提案', 'val.step.prevote': '预投票', 'val.step.precommit': '预提交',
  'status.active': '有效', 'status.revoked': '已撤销', 'status.released': '已解除', 'status.pending': '待上链', 'status.committed': '已上链',
  'col.kind': '类型', 'col.details': '内容', 'col.attester': '证明方', 'col.status': '状态', 'col.record': '记录', 'col.period': '期间',
  'col.category': '类别', 'col.amount': '金额', 'col.patent': '专利', 'col.valuation': '最新评估值', 'col.appraisal': '评估（方法 · 基准日 · 机构）',
  'col.pledges': '质押', 'col.ltv': '质押率', 'col.name': '名称', 'col.keyid': '密钥 ID', 'col.sig': '签名', 'col.roles': '角色',
  'col.pubkey': '公钥', 'col.metric': '指标', 'col.value': '值',
  'amt.confidential': '保密（未披露）',
  'rd.title': '研发投入', 'rd.none': '账本上没有该企业的研发投入记录。', 'rd.chart': '按年度研发投入（合计）', 'rd.disagree': '各方金额不一致',
  'rd.fromq': '由季度合计', 'rd.nototal': '没有“合计”类别的记录，无法按年汇总。', 'rd.table': '全部研发投入记录', 'rd.attesters': '{n} 家机构证明',
  'pat.title': '专利、评估与质押', 'pat.none': '账本上没有该企业的专利记录。', 'pat.expired': '评估已过期', 'pat.unpledged': '未质押', 'pat.table': '按专利汇总',
  'ent.title': '企业信用档案', 'ent.partial': '只读取了前 {n} 条记录。', 'ent.none': '账本上没有该企业的记录。',
  'sum.records': '记录数', 'sum.rdlast': '最近年度研发投入', 'sum.patents': '专利数', 'sum.secured': '有效质押担保金额', 'sum.attesters': '证明机构数',
  'flag.title': '已撤销或被标记的记录', 'flag.table': '已撤销的记录', 'flag.none': '没有被撤销的记录。',
  'other.title': '其他记录', 'other.table': '其他类型的记录',
  'patent.title': '专利', 'patent.table': '该专利的全部记录', 'patent.none': '账本上没有该专利的记录。',
  'rec.title': '记录', 'rec.claim': '声明内容', 'rec.meta': '位置与状态',
  'v.title': '在浏览器中验证', 'v.lead': '本页自行用 WebCrypto 重新计算叶哈希和默克尔根，并用创世文件中的验证者公钥检查检查点签名，无需信任服务器。',
  'v.src.pinned': '验证者公钥来自您固定的创世文件。', 'v.src.node': '验证者公钥来自本节点提供的创世文件（可在“账本”页固定您自己的创世文件）。',
  'v.running': '正在验证…', 'v.verified': '已验证：该记录包含在高度 {height} 的检查点中，{signed}/{n} 名验证者签名有效。', 'v.failed': '验证失败：不要依赖本记录。',
  'v.again': '重新验证', 'v.pending': '记录尚未上链，暂无证明。',
  'v.genesis': '读取创世文件：{n} 名验证者，日志标识 {origin}', 'v.checkpoint': '读取检查点：树大小 {size}，高度 {height}',
  'v.origin': '检查点的日志标识与创世文件不一致', 'v.signatures': '检查点签名：{signed} 名有效，需要 {needed}/{n}（超过 2/3）',
  'v.record': '读取记录字节', 'v.id': '记录编号 = SHA-256(记录正文)', 'v.notyet': '记录晚于最新检查点',
  'v.proof': '包含证明', 'v.root': '由叶哈希和审计路径重新计算的根与检查点的根一致（树大小 {size}）',
  'v.badsig': '验证者 {name} 的签名无效', 'v.noquorum': '只有 {signed} 名验证者签名，需要 {needed}/{n}', 'v.error': '验证出错',
  'chain.title': '账本', 'chain.status': '状态', 'chain.cp': '最新检查点', 'chain.nocp': '尚无已提交的区块。',
  'chain.cpok': '签名有效：{signed} 名验证者（需要 {needed}/{n}）', 'chain.cosigners': '联署验证者', 'chain.unknown': '未知密钥（忽略）',
  'chain.sigok': '有效', 'chain.sigbad': '无效', 'chain.note': '签名注记原文', 'chain.pinbad': '不是有效的创世文件', 'chain.unpin': '取消固定',
  'chain.validators': '验证者', 'chain.fingerprint': '创世文件指纹', 'chain.validators.table': '{n} 名验证者；检查点需要 {needed} 个签名',
  'chain.pin': '固定创世文件（从可信渠道获得的 genesis.toml）',
  'ops.title': '节点运行', 'ops.peers': '连接的节点', 'ops.sync': '同步', 'ops.syncing': '同步中', 'ops.insync': '已同步', 'ops.height': '高度',
  'ops.role': '角色', 'ops.validator': '验证者', 'ops.observer': '观察者', 'ops.latency': '平均提交耗时', 'ops.mempool': '交易池',
  'ops.mp.records': '记录 {n} / {max}', 'ops.mp.bytes': '字节 {n} / {max}', 'ops.mp.held': '等待前序号的记录：{n}', 'ops.node': '本节点',
  'ops.metrics': '指标', 'ops.metrics.table': 'Prometheus 指标（/metrics）',
  'q.title': '查询记录', 'q.none': '账本上没有对本企业的查询记录。', 'q.caption': '共 {n} 次查询，最近的在前', 'q.when': '查询时间',
  'q.reader': '查询机构', 'q.purpose': '查询原因', 'q.consent': '授权', 'q.noconsent': '监管查询（无需授权）', 'q.node': '记录节点',
  'pf.title': '组合', 'pf.absent': '本节点尚未提供组合接口（/v1/portfolio）。',
  'pf.lead': '知识产权质押贷款，截至高度 {height}（{records} 条记录）。不良 = 次级 + 可疑 + 损失。',
  'pf.lenders': '各贷款行', 'pf.lender': '贷款行', 'pf.all': '全部贷款行', 'pf.col.loans': '在贷笔数', 'pf.col.outstanding': '贷款余额',
  'pf.col.bad': '不良余额', 'pf.col.ratio': '不良率', 'pf.ltv': '质押率分布', 'pf.ltv.chart': '在贷贷款按质押率（余额 / 评估值）分布',
  'pf.ltv.note': '每笔贷款按其质押物评估值计算一次。', 'pf.loans': '{n} 笔', 'pf.pools': '风险补偿资金池', 'pf.nopools': '账本上没有风险补偿资金池。',
  'pf.col.share': '资金池分担比例', 'pf.col.enrolled': '入池贷款', 'pf.col.exposure': '风险敞口', 'pf.col.claimed': '已申请补偿',
  'pf.col.paid': '已支付', 'pf.claims': '（{n} 笔）', 'pf.othercur': '另有 {n} 笔非人民币贷款未计入。',
};

const en = {
  skip: 'Skip to content', brand: 'Credence tech-finance ledger', 'nav.search': 'Search', 'nav.chain': 'Chain', 'nav.portfolio': 'Portfolio', 'nav.ops': 'Node',
  'lang.switch': '中文', loading: 'Loading…', footer: 'Every figure comes from the ledger; proofs are checked in this browser.',
  'nav.signin': 'Sign in', 'signin.title': 'Sign in with an access key', 'signin.lead': 'Paste the access-key file your member issued you (written by credence keys access). Requests are signed per RFC 9421; an enterprise\'s facts are read under its consent, and every such read is logged on the ledger.',
  'signin.file': 'Access-key file', 'signin.purpose': 'Purpose of the reads', 'signin.go': 'Sign in', 'signin.out': 'Sign out',
  'purpose.loan-application': 'Loan application', 'purpose.post-loan-monitoring': 'Post-loan monitoring', 'purpose.guarantee-review': 'Guarantee review', 'purpose.risk-pool-claim': 'Risk-pool claim', 'purpose.supervision': 'Supervision',
  'session.public': 'Public access (unsigned requests)', 'session.key': 'Access key {key}', notfound: 'No such page', error: 'Error',
  yes: 'yes', no: 'no', 'unit.months': '{n} months',
  'search.title': 'Search', 'search.lead': 'Find credit facts on the ledger by unified social credit code, patent application number or record id.', 'search.go': 'Search',
  'search.uscc': 'Unified social credit code', 'search.uscc.hint': '18 characters, GB 32100-2015, with its check character, e.g. 914403001922038216',
  'search.patent': 'Patent application number', 'search.patent.hint': 'CN + 12 digits + check digit, e.g. CN202310123456.6',
  'search.record': 'Record id', 'search.record.hint': '64 hex digits (SHA-256 of the record body)',
  'err.required': 'Please fill in this field.', 'err.whitespace': 'Spaces are not allowed.',
  'err.uscc.length': 'A unified social credit code has 18 characters; this has {got}.',
  'err.uscc.char': 'Character {pos} "{ch}" is not allowed (digits and capital letters except I, O, Z, S, V).',
  'err.uscc.division': 'Character {pos} "{ch}" must be a digit (characters 3–8 are the division code).',
  'err.uscc.check': 'Wrong check character: character 18 is "{found}", it should be "{expected}".',
  'err.patent.prefix': 'Prefix "{prefix}" is not allowed: an application number starts with CN or directly with its 12 digits.',
  'err.patent.dots': 'Only one dot is allowed (before the check digit).', 'err.patent.char': 'Character {pos} "{ch}" must be a digit.',
  'err.patent.legacy': '8-digit numbers (before 2003) are not supported; use the 12-digit form, e.g. CN200310102344.5.',
  'err.patent.digits': 'Expected 12 digits; this has {got}.', 'err.patent.checkchar': 'The check digit must be one digit or X.',
  'err.patent.year': 'Filing year {year} is not between 2003 and 2100.', 'err.patent.type': 'Digit 5 "{ch}" is not an application type (1, 2, 3, 8, 9).',
  'err.patent.check': 'Wrong check digit: "{found}", it should be "{expected}".',
  'err.id.length': 'A record id has 64 hex digits; this has {got}.', 'err.id.char': 'Character {pos} "{ch}" is not a hex digit.',
  'kind.rd-spend': 'R&D spend', 'kind.patent-valuation': 'Patent valuation', 'kind.pledge': 'Patent pledge', 'kind.release': 'Pledge release', 'kind.revoke': 'Revocation', 'kind.equivocation': 'Validator equivocation',
  'kind.ip-pledge': 'IP pledge', 'kind.patent-status': 'Patent status', 'kind.appraisal': 'Appraisal', 'kind.loan': 'Loan', 'kind.loan-event': 'Loan event',
  'kind.risk-pool': 'Risk pool', 'kind.disposal': 'Collateral disposal', 'kind.qualification': 'Qualification', 'kind.access-key': 'Access-key grant',
  'kind.consent': 'Consent', 'kind.query': 'Query record', 'kind.gov-proposal': 'Governance proposal', 'kind.gov-approval': 'Governance approval', 'kind.key-rotation': 'Key rotation',
  'field.recipient': 'Recipient', 'field.purpose': 'Purpose', 'field.scope': 'Scope', 'field.expires_at_ms': 'Expires', 'field.reader': 'Reader',
  'field.access_key': 'Access key', 'field.consent': 'Consent', 'field.read': 'Read', 'field.holder': 'Holder', 'field.scopes': 'Scopes',
  'field.lender': 'Lender', 'field.borrower': 'Borrower', 'field.principal': 'Principal', 'field.maturity': 'Maturity', 'field.rate_bp': 'Rate (bp)',
  'field.enterprise': 'Enterprise', 'field.period': 'Period', 'field.amount': 'Amount', 'field.category': 'Category', 'field.evidence': 'Evidence hash',
  'field.patent': 'Patent', 'field.owner': 'Owner', 'field.value': 'Value', 'field.method': 'Method', 'field.valuation_date': 'Valuation date',
  'field.valid_until': 'Valid until', 'field.pledgor': 'Pledgor', 'field.pledgee': 'Pledgee', 'field.secured': 'Secured amount', 'field.start': 'Start',
  'field.term_months': 'Term', 'field.pledge': 'Pledge record', 'field.target': 'Revoked record', 'field.superseded_by': 'Superseded by',
  'field.validator': 'Validator', 'field.height': 'Height', 'field.round': 'Round', 'field.step': 'Step', 'field.kind': 'Kind',
  'field.attester': 'Attester', 'field.sequence': 'Sequence', 'field.issued_at_ms': 'Issued at', 'field.status': 'Status',
  'field.record_status': 'Record status', 'field.leaf_index': 'Leaf index', 'field.origin': 'Log origin', 'field.tree_size': 'Tree size',
  'field.block_hash': 'Block hash', 'field.chain_id': 'Chain id (genesis hash)', 'field.tree_root': 'Merkle root', 'field.time_ms': 'Block time',
  'field.member': 'Member', 'field.syncing': 'Syncing',
  'val.category.total': 'total', 'val.category.personnel': 'personnel', 'val.category.direct-inputs': 'direct inputs', 'val.category.depreciation': 'depreciation',
  'val.category.amortization': 'amortization', 'val.category.new-product-design': 'new product design', 'val.category.commissioned': 'commissioned', 'val.category.other': 'other',
  'val.method.income': 'income approach', 'val.method.market': 'market approach', 'val.method.cost': 'cost approach',
  'val.role.bank': 'bank', 'val.role.service-centre': 'tech-finance service centre', 'val.role.appraiser': 'appraiser',
  'val.step.proposal': 'proposal', 'val.step.prevote': 'prevote', 'val.step.precommit': 'precommit',
  'status.active': 'active', 'status.revoked': 'revoked', 'status.released': 'released', 'status.pending': 'pending', 'status.committed': 'committed',
  'col.kind': 'Kind', 'col.details': 'Details', 'col.attester': 'Attester', 'col.status': 'Status', 'col.record': 'Record', 'col.period': 'Period',
  'col.category': 'Category', 'col.amount': 'Amount', 'col.patent': 'Patent', 'col.valuation': 'Latest valuation', 'col.appraisal': 'Appraisal (method · date · appraiser)',
  'col.pledges': 'Pledges', 'col.ltv': 'Loan to value', 'col.name': 'Name', 'col.keyid': 'Key ID', 'col.sig': 'Signature', 'col.roles': 'Roles',
  'col.pubkey': 'Public key', 'col.metric': 'Metric', 'col.value': 'Value',
  'amt.confidential': 'confidential (not disclosed)',
  'rd.title': 'R&D spend', 'rd.none': 'No R&D spend of this enterprise is on the ledger.', 'rd.chart': 'R&D spend by year (total)', 'rd.disagree': 'members disagree',
  'rd.fromq': 'sum of quarters', 'rd.nototal': 'No records of category "total", so no yearly figure.', 'rd.table': 'Every R&D spend record', 'rd.attesters': 'attested by {n}',
  'pat.title': 'Patents, valuations and pledges', 'pat.none': 'No patent records of this enterprise are on the ledger.', 'pat.expired': 'valuation expired', 'pat.unpledged': 'not pledged', 'pat.table': 'By patent',
  'ent.title': 'Enterprise credit profile', 'ent.partial': 'Only the first {n} records were read.', 'ent.none': 'No records of this enterprise are on the ledger.',
  'sum.records': 'Records', 'sum.rdlast': 'Latest yearly R&D', 'sum.patents': 'Patents', 'sum.secured': 'Secured by active pledges', 'sum.attesters': 'Attesting members',
  'flag.title': 'Revoked or flagged records', 'flag.table': 'Revoked records', 'flag.none': 'No record has been revoked.',
  'other.title': 'Other records', 'other.table': 'Records of other kinds',
  'patent.title': 'Patent', 'patent.table': 'Every record of this patent', 'patent.none': 'No records of this patent are on the ledger.',
  'rec.title': 'Record', 'rec.claim': 'Statement', 'rec.meta': 'Where it is and what became of it',
  'v.title': 'Verified in this browser', 'v.lead': 'This page recomputes the leaf hash and the Merkle root with WebCrypto and checks the checkpoint\'s signatures against the validator keys of the genesis file, without trusting the server.',
  'v.src.pinned': 'Validator keys come from the genesis file you pinned.', 'v.src.node': 'Validator keys come from the genesis file this node serves (pin your own on the Chain page).',
  'v.running': 'Verifying…', 'v.verified': 'Verified: this record is in the checkpoint of height {height}, signed by {signed} of {n} validators.', 'v.failed': 'Verification failed: do not rely on this record.',
  'v.again': 'Verify again', 'v.pending': 'The record is not committed yet, so it has no proof.',
  'v.genesis': 'Genesis read: {n} validators, log origin {origin}', 'v.checkpoint': 'Checkpoint read: tree size {size}, height {height}',
  'v.origin': 'The checkpoint\'s origin is not the genesis\'s', 'v.signatures': 'Checkpoint signatures: {signed} valid, {needed} of {n} needed (more than 2/3)',
  'v.record': 'Record bytes read', 'v.id': 'Record id = SHA-256(record body)', 'v.notyet': 'The record is newer than the latest checkpoint',
  'v.proof': 'Inclusion proof', 'v.root': 'The root recomputed from the leaf hash and the audit path equals the checkpoint\'s (tree size {size})',
  'v.badsig': 'Invalid signature from validator {name}', 'v.noquorum': 'Only {signed} validators signed; {needed} of {n} needed', 'v.error': 'Verification error',
  'chain.title': 'Chain', 'chain.status': 'Status', 'chain.cp': 'Latest checkpoint', 'chain.nocp': 'No block is committed yet.',
  'chain.cpok': 'Signatures valid: {signed} validators ({needed} of {n} needed)', 'chain.cosigners': 'Cosigners', 'chain.unknown': 'unknown key (ignored)',
  'chain.sigok': 'valid', 'chain.sigbad': 'invalid', 'chain.note': 'The signed note as served', 'chain.pinbad': 'Not a valid genesis file', 'chain.unpin': 'Unpin',
  'chain.validators': 'Validators', 'chain.fingerprint': 'Genesis file fingerprint', 'chain.validators.table': '{n} validators; a checkpoint needs {needed} signatures',
  'chain.pin': 'Pin a genesis file (a genesis.toml from a channel you trust)',
  'ops.title': 'Node operations', 'ops.peers': 'Connected peers', 'ops.sync': 'Sync', 'ops.syncing': 'catching up', 'ops.insync': 'in sync', 'ops.height': 'Height',
  'ops.role': 'Role', 'ops.validator': 'validator', 'ops.observer': 'observer', 'ops.latency': 'Mean commit step', 'ops.mempool': 'Mempool',
  'ops.mp.records': 'records {n} / {max}', 'ops.mp.bytes': 'bytes {n} / {max}', 'ops.mp.held': 'Held for an earlier sequence: {n}', 'ops.node': 'This node',
  'ops.metrics': 'Metrics', 'ops.metrics.table': 'Prometheus metrics (/metrics)',
  'q.title': 'Query history', 'q.none': 'No query of this enterprise is on the ledger.', 'q.caption': '{n} queries, newest first', 'q.when': 'When',
  'q.reader': 'Queried by', 'q.purpose': 'Purpose', 'q.consent': 'Consent', 'q.noconsent': "Regulator's read (no consent needed)", 'q.node': 'Logged by',
  'pf.title': 'Portfolio', 'pf.absent': 'This node does not serve a portfolio yet (/v1/portfolio).',
  'pf.lead': 'IP-pledge loans at height {height} ({records} records). Bad = substandard + doubtful + loss.',
  'pf.lenders': 'By lender', 'pf.lender': 'Lender', 'pf.all': 'All lenders', 'pf.col.loans': 'Loans outstanding', 'pf.col.outstanding': 'Outstanding',
  'pf.col.bad': 'Bad loans', 'pf.col.ratio': 'Bad-loan ratio', 'pf.ltv': 'Loan-to-value distribution', 'pf.ltv.chart': 'Loans outstanding by loan-to-value (outstanding / appraised value)',
  'pf.ltv.note': 'Each loan counts once, against the appraised value of its collateral.', 'pf.loans': '{n} loans', 'pf.pools': 'Risk-compensation pools', 'pf.nopools': 'No risk-compensation pool on the ledger.',
  'pf.col.share': 'Pool share', 'pf.col.enrolled': 'Loans enrolled', 'pf.col.exposure': 'Exposure', 'pf.col.claimed': 'Claimed',
  'pf.col.paid': 'Paid', 'pf.claims': '({n} claims)', 'pf.othercur': '{n} loans in other currencies are not counted.',
};

const DICT = { zh, en };

function initial() {
  const saved = localStorage.getItem(STORE);
  if (saved === 'zh' || saved === 'en') return saved;
  return (navigator.language || 'zh').toLowerCase().startsWith('zh') ? 'zh' : 'en';
}

let current = initial();

export function lang() {
  return current;
}

export function setLang(l) {
  if (!DICT[l]) return;
  current = l;
  localStorage.setItem(STORE, l);
}

export function has(key) {
  return Object.prototype.hasOwnProperty.call(DICT[current], key);
}

export function t(key, params = {}) {
  const s = has(key) ? DICT[current][key] : key;
  return s.replace(/\{(\w+)\}/g, (m, k) => (params[k] === undefined ? m : String(params[k])));
}

/** Keys present in one language and not the other (the console's self-check). */
export function missing() {
  return [...Object.keys(zh).filter((k) => !(k in en)), ...Object.keys(en).filter((k) => !(k in zh))];
}
