// Interface strings in English and Chinese; the browser's language picks one.

const STRINGS = {
  en: {
    signin_title: "Sign in", signin_hint: "Enter an API key of this server.", key_label: "API key",
    signin: "Sign in", signout: "Sign out", bad_key: "This key was refused (wrong or revoked).",
    no_server: "The server cannot be reached.", tab_chat: "Chat", tab_kb: "Knowledge", tab_dash: "Dashboard",
    new_chat: "New chat", rename: "Rename", export_md: "Markdown", export_json: "JSON", delete: "Delete",
    send: "Send", stop: "Stop", regenerate: "Regenerate", settings: "Settings", temperature: "Temperature",
    top_p: "Top p", max_tokens: "Max tokens", web_search: "Web search", knowledge_bases: "Knowledge bases",
    prompt_ph: "Message (Enter to send, Shift+Enter for a new line)", thinking: "Thinking",
    thought_for: "Thought for {s} s", thinking_now: "Thinking…", stopped: "Stopped.",
    tokens: "{n} tokens · {tps} tokens/s", lost: "The connection was lost; the partial answer is kept.",
    sources: "Sources", close: "Close", untitled: "New conversation", confirm_delete: "Delete this conversation?",
    rename_ph: "New title", kb_create: "Create", kb_name_ph: "new-knowledge-base", upload: "Upload",
    kb_docs: "Documents", kb_none: "No knowledge bases yet.", chunks: "chunks", status: "Status",
    file: "File", message: "Message", dash_health: "Health", dash_running: "Running", dash_waiting: "Waiting",
    dash_kv: "KV cache", dash_tps: "Tokens/s", dash_prefix: "Prefix-cache hit rate", dash_audit: "Audit log",
    dash_chain_ok: "chain verifies ({n} records)", dash_chain_bad: "chain broken: {p}",
    dash_redactions: "Redactions by type", dash_admin_only: "The audit view needs an admin key.",
    dash_experts: "Expert load (tokens routed to each expert, all MoE layers)", no_kbs_selected: "none",
    dash_experts_summary: "{n} experts · busiest at {imb}× the mean", dash_expert: "expert {e}",
    dash_no_redactions: "No redactions recorded.", dash_recent: "Recent requests", dash_time: "Time",
    dash_key: "Key", dash_request: "Request", dash_redacted: "Redacted", dash_sources: "Sources",
    tab_apps: "Applications", app_risk: "Transaction risk", app_clinical: "Clinical assistant",
    risk_hint: "Upload a CSV of transactions (header row with transaction_id, account_id, amount, currency, timestamp, merchant, category, channel, country, home_country, account_age_days, avg_amount_90d, std_amount_90d, …). Each row is scored by the model and the rules together.",
    risk_file: "Transactions CSV", risk_run: "Score", risk_choose: "Choose a CSV file first.",
    risk_not_csv: "{name} is not a CSV file; upload a .csv with a header row.",
    risk_bad_csv: "The CSV could not be read: {m}", risk_no_header: "The CSV has no transaction_id column in its header row.",
    risk_no_rows: "The CSV has a header but no rows.", risk_too_many: "{n} rows: the limit is 5000 a file; split it.",
    risk_scoring: "Scoring {done} of {n} transactions…", risk_done: "{n} scored, {bad} rejected.",
    risk_levels: "Risk levels", risk_reasons: "Top reasons", risk_no_reasons: "No reasons given.",
    risk_results: "Results", risk_csv: "Download CSV", risk_html: "HTML report", risk_rejected: "Rejected rows",
    risk_row_error: "row {row} ({id}): {m}", risk_report_title: "Transaction risk report",
    risk_summary: "{n} transactions scored, {bad} rejected, from {file}.",
    risk_col_id: "Transaction", risk_col_level: "Risk", risk_col_combined: "Combined score",
    risk_col_model: "Model score", risk_col_rules: "Rules score", risk_col_reasons: "Reasons",
    clin_imaging: "Imaging (DICOM)", clin_dicom: "DICOM files", clin_upload: "De-identify and attach",
    clin_clear: "Clear images", clin_choose_dicom: "Choose one or more DICOM files first.",
    clin_preview_alt: "De-identified preview: {m} of {b}", clin_no_preview: "No preview",
    clin_symptoms: "Symptoms", clin_symptoms_ph: "Describe the patient's symptoms, their onset and course.",
    clin_kbs: "Medical knowledge bases", clin_step_triage: "Triage", clin_step_diagnose: "Differential diagnosis",
    clin_run: "Assess", clin_dept: "Department", clin_urgency: "Urgency", clin_differential: "Differential diagnosis",
    clin_next: "Next steps", clin_cites: "Citations", clin_no_cites: "none", clin_none: "The model gave none.", clin_no_symptoms: "Describe the symptoms first.",
    clin_redacted: "Removed from the prompt before the model saw it: {r}", saved_error: "Could not save: {m}",
    no_text: "Type a message first.", empty_answer: "(no answer text)",
  },
  zh: {
    signin_title: "登录", signin_hint: "输入本服务器的 API 密钥。", key_label: "API 密钥",
    signin: "登录", signout: "退出", bad_key: "密钥被拒绝（错误或已吊销）。",
    no_server: "无法连接服务器。", tab_chat: "对话", tab_kb: "知识库", tab_dash: "运维面板",
    new_chat: "新对话", rename: "重命名", export_md: "Markdown", export_json: "JSON", delete: "删除",
    send: "发送", stop: "停止", regenerate: "重新生成", settings: "设置", temperature: "温度",
    top_p: "Top p", max_tokens: "最大 token 数", web_search: "联网搜索", knowledge_bases: "知识库",
    prompt_ph: "输入消息（回车发送，Shift+回车换行）", thinking: "思考过程",
    thought_for: "思考了 {s} 秒", thinking_now: "思考中…", stopped: "已停止。",
    tokens: "{n} 个 token · 每秒 {tps} 个", lost: "连接中断；已保留部分回答。",
    sources: "来源", close: "关闭", untitled: "新对话", confirm_delete: "删除这个对话？",
    rename_ph: "新标题", kb_create: "创建", kb_name_ph: "new-knowledge-base", upload: "上传",
    kb_docs: "文档", kb_none: "还没有知识库。", chunks: "块", status: "状态",
    file: "文件", message: "信息", dash_health: "健康状态", dash_running: "运行中", dash_waiting: "等待中",
    dash_kv: "KV 缓存", dash_tps: "每秒 token", dash_prefix: "前缀缓存命中率", dash_audit: "审计日志",
    dash_chain_ok: "哈希链校验通过（{n} 条记录）", dash_chain_bad: "哈希链损坏：{p}",
    dash_redactions: "按类型的脱敏次数", dash_admin_only: "审计视图需要管理员密钥。",
    dash_experts: "专家负载（各 MoE 层路由到每个专家的 token 数）", no_kbs_selected: "无",
    dash_experts_summary: "{n} 个专家 · 最忙的是平均值的 {imb} 倍", dash_expert: "专家 {e}",
    dash_no_redactions: "尚无脱敏记录。", dash_recent: "最近的请求", dash_time: "时间",
    dash_key: "密钥", dash_request: "请求", dash_redacted: "已脱敏", dash_sources: "来源",
    tab_apps: "应用", app_risk: "交易风险", app_clinical: "临床助手",
    risk_hint: "上传交易 CSV（表头含 transaction_id、account_id、amount、currency、timestamp、merchant、category、channel、country、home_country、account_age_days、avg_amount_90d、std_amount_90d 等）。每一行由模型与规则共同评分。",
    risk_file: "交易 CSV", risk_run: "评分", risk_choose: "请先选择 CSV 文件。",
    risk_not_csv: "{name} 不是 CSV 文件；请上传带表头的 .csv。",
    risk_bad_csv: "无法读取 CSV：{m}", risk_no_header: "CSV 表头中没有 transaction_id 列。",
    risk_no_rows: "CSV 只有表头，没有数据行。", risk_too_many: "{n} 行：每个文件最多 5000 行，请拆分。",
    risk_scoring: "正在评分 {done} / {n} 笔交易…", risk_done: "已评分 {n} 笔，拒绝 {bad} 行。",
    risk_levels: "风险等级", risk_reasons: "主要原因", risk_no_reasons: "没有给出原因。",
    risk_results: "结果", risk_csv: "下载 CSV", risk_html: "HTML 报告", risk_rejected: "被拒绝的行",
    risk_row_error: "第 {row} 行（{id}）：{m}", risk_report_title: "交易风险报告",
    risk_summary: "来自 {file}：已评分 {n} 笔交易，拒绝 {bad} 行。",
    risk_col_id: "交易", risk_col_level: "风险", risk_col_combined: "综合分",
    risk_col_model: "模型分", risk_col_rules: "规则分", risk_col_reasons: "原因",
    clin_imaging: "影像（DICOM）", clin_dicom: "DICOM 文件", clin_upload: "去标识并附加",
    clin_clear: "清除影像", clin_choose_dicom: "请先选择一个或多个 DICOM 文件。",
    clin_preview_alt: "去标识预览：{b} 的 {m}", clin_no_preview: "无预览",
    clin_symptoms: "症状", clin_symptoms_ph: "描述患者的症状、起病与病程。",
    clin_kbs: "医学知识库", clin_step_triage: "分诊", clin_step_diagnose: "鉴别诊断",
    clin_run: "评估", clin_dept: "科室", clin_urgency: "紧急程度", clin_differential: "鉴别诊断",
    clin_next: "下一步检查", clin_cites: "引用", clin_no_cites: "无", clin_none: "模型没有给出。", clin_no_symptoms: "请先描述症状。",
    clin_redacted: "模型看到提示前已移除：{r}", saved_error: "保存失败：{m}",
    no_text: "请先输入消息。", empty_answer: "（无回答文本）",
  },
};

export const LANG = (navigator.languages?.[0] || navigator.language || "en").toLowerCase().startsWith("zh") ? "zh" : "en";

export function t(key, vars = {}) {
  let s = STRINGS[LANG][key] ?? STRINGS.en[key] ?? key;
  for (const [k, v] of Object.entries(vars)) s = s.replaceAll("{" + k + "}", String(v));
  return s;
}

export function translatePage(root = document) {
  document.documentElement.lang = LANG === "zh" ? "zh-CN" : "en";
  for (const e of root.querySelectorAll("[data-i18n]")) e.textContent = t(e.dataset.i18n);
  for (const e of root.querySelectorAll("[data-i18n-ph]")) e.placeholder = t(e.dataset.i18nPh);
  for (const e of root.querySelectorAll("[data-i18n-label]")) e.setAttribute("aria-label", t(e.dataset.i18nLabel));
}
