// The mlpolicy extension: the `.mlp` language (grammar and language configuration, declared in
// package.json) and a language client that starts `mlpolicy lsp` over stdio.

import * as vscode from 'vscode';
import { LanguageClient, LanguageClientOptions, ServerOptions } from 'vscode-languageclient/node';

let client: LanguageClient | undefined;

export async function activate(context: vscode.ExtensionContext): Promise<void> {
  context.subscriptions.push(
    vscode.commands.registerCommand('mlpolicy.restartServer', () => restart()),
    vscode.workspace.onDidChangeConfiguration((e) => {
      if (e.affectsConfiguration('mlpolicy.server')) {
        void restart();
      }
    }),
  );
  await start();
}

export async function deactivate(): Promise<void> {
  await stop();
}

async function start(): Promise<void> {
  const command = vscode.workspace.getConfiguration('mlpolicy').get<string>('server.path') || 'mlpolicy';
  // No `transport`: the client then passes no `--stdio`; `mlpolicy lsp` always speaks stdio.
  const server: ServerOptions = { command, args: ['lsp'] };
  const options: LanguageClientOptions = {
    documentSelector: [{ scheme: 'file', language: 'mlpolicy' }],
    // Files changed outside the editor (a `git checkout`, mlpolicy.yaml saved) re-analyse their
    // configuration directory.
    synchronize: { fileEvents: vscode.workspace.createFileSystemWatcher('**/{*.mlp,mlpolicy.yaml}') },
  };
  client = new LanguageClient('mlpolicy', 'mlpolicy', server, options);
  try {
    await client.start();
  } catch (e) {
    client = undefined;
    void vscode.window.showErrorMessage(
      `mlpolicy: cannot start \`${command} lsp\` (${e}). Install mlpolicy or set "mlpolicy.server.path".`,
    );
  }
}

async function stop(): Promise<void> {
  const running = client;
  client = undefined;
  if (running) {
    await running.stop();
  }
}

async function restart(): Promise<void> {
  await stop();
  await start();
}
