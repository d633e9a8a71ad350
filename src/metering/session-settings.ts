import type { JsonObject } from '../pipeline/frame.js';
import type { ConversationView } from '../protocol/conversation.js';
import { asString as str } from '../protocol/json.js';
import { BETA_OUTPUT_LIMIT, readOutputLimit } from '../protocol/limits.js';
import { budgetedInputBytesPerMs } from '../protocol/audio-format.js';
import { instructionsEstimate, most, NO_TOKENS, promptVariablesEstimate, toolsEstimate } from './context.js';
import { mcpLabelsOf } from './mcp-tracking.js';
import type { ModalityTokens, ModelPrice, PriceBook } from './pricing.js';
import { askedTextOnly, dearerLimit, moreOutput, textOnly } from './session-fields.js';

interface SessionGuess {
  readonly n: number;
  readonly instructions: number | null;
  readonly tools: number | null;
  readonly maxOutput: number | 'inf' | null;
  readonly textOnly: boolean | null;
  readonly bytesPerMs: number | null;
  /** A reusable prompt's variables (`prompt: null` clears: none). */
  readonly prompt: ModalityTokens | null;
  /** A model switch asked: priced (refused upstream otherwise), pessimistically the dearer until answered. */
  readonly price: ModelPrice | null;
  /** The labels of the update's MCP tools (null: tools not set). */
  readonly mcp: readonly string[] | null;
}

/**
 * The session's settings that size a reservation (instructions, tools and their MCP servers, prompt
 * variables, output limit and modalities, models, input format): as the upstream last reported them,
 * or the larger a session.update still in flight asks.
 */
export class SessionSettings {
  /** The session's instructions and tools, estimated apart (a response may replace one and keep the other). */
  #instructionTokens = 0;
  #toolTokens = 0;
  #sessionTextOnly = false;
  /** The session's reusable prompt's variables (session.created/updated `prompt`), estimated. */
  #sessionPrompt: ModalityTokens = { ...NO_TOKENS };
  /** The `server_label`s of the session's MCP tools (as reported). */
  #sessionMcpLabels: string[] = [];
  /**
   * Client session.updates forwarded and not answered yet (`n`: their place among the session's
   * updates, ConversationView.sessionUpdatesSent): the upstream applies one before any create sent
   * after it, so until its session.updated (or error) comes, reservations take the larger of the
   * known and the asked value (instructions, tools, max_output_tokens, audio output, audio format).
   */
  #guesses: SessionGuess[] = [];

  constructor(
    private readonly prices: PriceBook,
    private readonly previewUpstream: boolean,
    private readonly conversation: Pick<ConversationView, 'sessionMaxOutputTokens' | 'sessionUpdatesAnswered'>,
  ) {}

  /**
   * A realtime session.update on its way upstream (`n`: its place among the session's updates;
   * `modelInUse`: the session's model now): what it asks counts at once, pessimistically (see
   * #guesses). The input format it asks (bytes per ms), or null.
   */
  guess(session: JsonObject, n: number, modelInUse: string): number | null {
    const gaMax = readOutputLimit(session['max_output_tokens']);
    // A preview upstream reads the beta member: guessed too, the larger of both (until 2026-12-07 it
    // was not, and a create right behind an update lifting it was priced at the old limit).
    const betaMax = this.previewUpstream ? readOutputLimit(session[BETA_OUTPUT_LIMIT]) : null;
    const model = str(session['model']);
    const g: SessionGuess = {
      n,
      instructions: 'instructions' in session ? instructionsEstimate(session['instructions']) : null,
      tools: 'tools' in session ? toolsEstimate(session['tools']) : null,
      maxOutput: dearerLimit(gaMax, betaMax),
      textOnly: askedTextOnly(session, this.previewUpstream),
      bytesPerMs: budgetedInputBytesPerMs(session),
      prompt: 'prompt' in session ? (promptVariablesEstimate(session['prompt']) ?? { ...NO_TOKENS }) : null,
      price: model !== null && model !== modelInUse ? (this.prices.lookup(model)?.price ?? null) : null,
      mcp: 'tools' in session ? mcpLabelsOf(session['tools']) : null,
    };
    if (g.instructions === null && g.tools === null && g.maxOutput === null && g.textOnly === null && g.bytesPerMs === null && g.prompt === null && g.price === null) return null;
    return this.#keepGuess(g);
  }

  /** An update of a transcription session asking an input format (`bytesPerMs`; null: none): kept, and returned. */
  guessFormat(n: number, bytesPerMs: number | null): number | null {
    if (bytesPerMs === null) return null;
    return this.#keepGuess({ n, instructions: null, tools: null, maxOutput: null, textOnly: null, bytesPerMs, prompt: null, price: null, mcp: null });
  }

  #keepGuess(g: SessionGuess): number | null {
    if (this.#guesses.length >= 64) this.#guesses.shift();
    this.#guesses.push(g);
    return g.bytesPerMs;
  }

  /** Drops the guesses the upstream has answered (applied or refused). */
  pruneGuesses(): void {
    if (this.#guesses.length === 0) return;
    const answered = this.conversation.sessionUpdatesAnswered;
    this.#guesses = this.#guesses.filter((g) => g.n > answered);
  }

  /** A realtime session as the upstream reports it (session.created/updated). */
  reported(session: JsonObject): void {
    if ('instructions' in session) this.#instructionTokens = instructionsEstimate(session['instructions']);
    if ('tools' in session) {
      this.#toolTokens = toolsEstimate(session['tools']);
      this.#sessionMcpLabels = mcpLabelsOf(session['tools']);
    }
    if ('prompt' in session) this.#sessionPrompt = promptVariablesEstimate(session['prompt']) ?? { ...NO_TOKENS };
    const modalities = textOnly(session['output_modalities']);
    if (modalities !== null) this.#sessionTextOnly = modalities;
  }

  /** `bytesPerMs`, or the denser format an update still in flight asks. */
  denserFormat(bytesPerMs: number): number {
    for (const g of this.#guesses) if (g.bytesPerMs !== null) bytesPerMs = Math.min(bytesPerMs, g.bytesPerMs);
    return bytesPerMs;
  }

  instructions(): number {
    let t = this.#instructionTokens;
    for (const g of this.#guesses) if (g.instructions !== null) t = Math.max(t, g.instructions);
    return t;
  }

  tools(): number {
    let t = this.#toolTokens;
    for (const g of this.#guesses) if (g.tools !== null) t = Math.max(t, g.tools);
    return t;
  }

  /** The session prompt's variables, or the larger an update in flight asks. */
  promptNow(): ModalityTokens {
    let t: ModalityTokens = this.#sessionPrompt;
    for (const g of this.#guesses) if (g.prompt !== null) t = most(t, g.prompt);
    return t;
  }

  /**
   * The prices a response starting now may run at: the model in use and every model an update in
   * flight switches to (the upstream applies an update before any create sent after it).
   */
  pricesNow(price: ModelPrice): ModelPrice[] {
    const out = [price];
    for (const g of this.#guesses) if (g.price !== null && !out.includes(g.price)) out.push(g.price);
    return out;
  }

  /** The session's tools have an MCP tool, or an update in flight sets tools with one. */
  mcpNow(): boolean {
    return this.mcpLabelsNow().length > 0;
  }

  /** The session's MCP servers, and those an update in flight sets. */
  mcpLabelsNow(): string[] {
    const out = [...this.#sessionMcpLabels];
    for (const g of this.#guesses) if (g.mcp !== null) out.push(...g.mcp);
    return out;
  }

  textOnlyNow(): boolean {
    return this.#sessionTextOnly && this.#guesses.every((g) => g.textOnly !== false);
  }

  /** The session's max_output_tokens for a response that sets none: as reported, or larger if an update in flight asks more; null: unknown ("inf"). */
  maxOutput(): number | 'inf' | null {
    let v = this.conversation.sessionMaxOutputTokens;
    if (v === null) return null;
    for (const g of this.#guesses) if (g.maxOutput !== null) v = moreOutput(v, g.maxOutput);
    return v;
  }
}
