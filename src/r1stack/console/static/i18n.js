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
    dash_experts: "Expert load: not reported by this model.", no_kbs_selected: "none",
    apps_note: "Risk and clinical applications: not in this console yet.", saved_error: "Could not save: {m}",
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
    dash_experts: "专家负载：此模型不提供。", no_kbs_selected: "无",
    apps_note: "风险评估与临床应用：控制台尚未提供。", saved_error: "保存失败：{m}",
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
