import { Layout, Notice } from '../components/layout.js';

/** A page that only says something: an error that must not redirect, or a confirmation. */
export function MessagePage(props: {
  title: string;
  message: string;
  kind?: 'error' | 'info';
  user?: { username: string } | null;
  csrf?: string;
}) {
  return (
    <Layout title={props.title} user={props.user ?? null} {...(props.csrf ? { csrf: props.csrf } : {})}>
      <div class="card">
        <h1>{props.title}</h1>
        <Notice kind={props.kind ?? 'error'}>{props.message}</Notice>
      </div>
    </Layout>
  );
}
