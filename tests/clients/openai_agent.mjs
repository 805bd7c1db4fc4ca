// An agent that uses the official OpenAI Node SDK exactly as a real one would: it reads
// OPENAI_BASE_URL and OPENAI_API_KEY from the environment (the SDK's own defaults), calls the API
// selected by SCENARIO and prints ONE JSON object of what the SDK returned. See README.md.
import OpenAI from 'openai';

const scenario = process.env.SCENARIO ?? 'chat';
const model = process.env.MODEL ?? 'gpt-4o-mini';
const prompt = process.env.PROMPT ?? 'Say hello.';
const messages = [{ role: 'user', content: prompt }];

// baseURL and apiKey come from OPENAI_BASE_URL / OPENAI_API_KEY, read by the SDK itself.
const client = new OpenAI({
  maxRetries: Number(process.env.MAX_RETRIES ?? '0'),
  timeout: Number(process.env.TIMEOUT_SECONDS ?? '60') * 1000,
});

async function chat() {
  const { data: completion, response } = await client.chat.completions
    .create({ model, messages })
    .withResponse();
  const choice = completion.choices[0];
  return {
    id: completion.id,
    model: completion.model,
    content: choice.message.content,
    finish_reason: choice.finish_reason,
    usage: completion.usage
      ? {
          prompt_tokens: completion.usage.prompt_tokens,
          completion_tokens: completion.usage.completion_tokens,
          total_tokens: completion.usage.total_tokens,
        }
      : null,
    request_id: response.headers.get('x-request-id'),
  };
}

async function chatStream() {
  const includeUsage = (process.env.INCLUDE_USAGE ?? '1') === '1';
  const { data: stream, response } = await client.chat.completions
    .create({
      model,
      messages,
      stream: true,
      ...(includeUsage ? { stream_options: { include_usage: true } } : {}),
    })
    .withResponse();
  const content = [];
  const ids = new Set();
  let chunks = 0;
  let usage = null;
  let finish = null;
  for await (const chunk of stream) {
    chunks += 1;
    ids.add(chunk.id);
    for (const choice of chunk.choices) {
      if (choice.delta?.content) content.push(choice.delta.content);
      finish = choice.finish_reason ?? finish;
    }
    if (chunk.usage) {
      usage = {
        prompt_tokens: chunk.usage.prompt_tokens,
        completion_tokens: chunk.usage.completion_tokens,
        total_tokens: chunk.usage.total_tokens,
      };
    }
  }
  return {
    id: ids.size === 1 ? [...ids][0] : [...ids].sort(),
    content: content.join(''),
    chunks,
    finish_reason: finish,
    usage,
    request_id: response.headers.get('x-request-id'),
  };
}

const scenarios = { chat, chat_stream: chatStream };

async function main() {
  const run = scenarios[scenario];
  if (!run) {
    console.log(JSON.stringify({ ok: false, error: { class: 'UnknownScenario', message: scenario } }));
    return 2;
  }
  try {
    const result = await run();
    console.log(JSON.stringify({ ok: true, scenario, ...result }));
    return 0;
  } catch (error) {
    if (error instanceof OpenAI.APIError) {
      console.log(
        JSON.stringify({
          ok: false,
          scenario,
          error: {
            class: error.constructor.name,
            status: error.status ?? null,
            type: error.type ?? error.error?.type ?? null,
            code: error.code ?? error.error?.code ?? null,
            message: error.message,
            body: error.error ?? null,
            request_id: error.requestID ?? null,
            retry_after: error.headers?.get?.('retry-after') ?? null,
            steward_error: error.headers?.get?.('steward-error') ?? null,
          },
        }),
      );
      return 3;
    }
    throw error;
  }
}

process.exitCode = await main();
