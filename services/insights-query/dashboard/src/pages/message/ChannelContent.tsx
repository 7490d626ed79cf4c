import type { FunctionComponent } from "preact";
import { channelLabel, formatTime } from "../../components/format";
import type { Button, Channel, Content } from "../../types";
import { ChatText } from "./chatText";
import { safeHref } from "./links";
import "./content.css";

interface ViewProps {
  content: Content;
  sentAt: string;
}

/** Buttons as the user saw them: look-alikes, not controls of this page. */
function MockButtons({ buttons, variant }: { buttons: Button[]; variant: string }) {
  if (buttons.length === 0) return null;
  return (
    <ul class={`mock-buttons mock-buttons-${variant}`} aria-label="Buttons">
      {buttons.map((button, index) => (
        <li key={button.id} class={index === 0 ? "mock-button first" : "mock-button"}>
          {button.label || button.id}
        </li>
      ))}
    </ul>
  );
}

function PushCard({ content, sentAt }: ViewProps) {
  return (
    <div class="device device-push">
      <div class="push-card">
        <p class="push-meta">
          <span class="push-app" aria-hidden="true" />
          Push notification · {formatTime(sentAt)}
        </p>
        {content.title && <p class="push-title">{content.title}</p>}
        {content.body && <p class="push-body">{content.body}</p>}
        <MockButtons buttons={content.buttons} variant="push" />
      </div>
    </div>
  );
}

function SmsBubble({ content, sentAt }: ViewProps) {
  return (
    <div class="device device-phone">
      <p class="phone-meta">Text message · {formatTime(sentAt)}</p>
      <div class="bubble bubble-sms">
        {content.title && <strong class="bubble-title">{content.title}</strong>}
        {content.body}
      </div>
    </div>
  );
}

function InAppCard({ content }: ViewProps) {
  return (
    <div class="device device-app">
      <div class="in-app-card">
        {content.title && <p class="in-app-title">{content.title}</p>}
        {content.body && <p class="in-app-body">{content.body}</p>}
        <MockButtons buttons={content.buttons} variant="in-app" />
      </div>
    </div>
  );
}

function EmailView({ content, sentAt }: ViewProps) {
  return (
    <div class="email">
      <dl class="email-head">
        <dt>Subject</dt>
        <dd class="email-subject">{content.title || <span class="muted">(no subject)</span>}</dd>
        <dt>Sent</dt>
        <dd>{formatTime(sentAt)}</dd>
      </dl>
      <div class="email-body">{content.body}</div>
      <MockButtons buttons={content.buttons} variant="email" />
    </div>
  );
}

function AlimTalkBubble({ content, sentAt }: ViewProps) {
  return (
    <div class="device device-chat chat-kakao">
      <p class="phone-meta">Kakao AlimTalk · {formatTime(sentAt)}</p>
      <div class="bubble bubble-kakao">
        <p class="kakao-head">알림톡 도착</p>
        <div class="kakao-body">
          {content.title && <strong class="bubble-title">{content.title}</strong>}
          {content.body}
        </div>
        <MockButtons buttons={content.buttons} variant="kakao" />
      </div>
    </div>
  );
}

function WhatsAppBubble({ content, sentAt }: ViewProps) {
  return (
    <div class="device device-chat chat-whatsapp">
      <p class="phone-meta">WhatsApp · {formatTime(sentAt)}</p>
      <div class="bubble bubble-whatsapp">
        {content.title && (
          <strong class="bubble-title">
            <ChatText text={content.title} />
          </strong>
        )}
        <ChatText text={content.body ?? ""} />
      </div>
      <MockButtons buttons={content.buttons} variant="whatsapp" />
    </div>
  );
}

const VIEWS: Record<Channel, FunctionComponent<ViewProps>> = {
  push: PushCard,
  sms: SmsBubble,
  in_app: InAppCard,
  email: EmailView,
  alimtalk: AlimTalkBubble,
  whatsapp: WhatsAppBubble,
};

/** Where each button led, with links only for web addresses. */
function ButtonTargets({ buttons }: { buttons: Button[] }) {
  if (buttons.length === 0) return null;
  return (
    <dl class="facts button-targets">
      {buttons.map((button) => {
        const href = safeHref(button.url);
        return [
          <dt key={`${button.id}-label`}>{button.label || button.id}</dt>,
          <dd key={`${button.id}-url`}>
            {href ? (
              <a href={href} target="_blank" rel="noopener noreferrer">
                {button.url}
              </a>
            ) : (
              <span class="muted">{button.url ? button.url : "No link"}</span>
            )}{" "}
            <span class="muted">(id {button.id})</span>
          </dd>,
        ];
      })}
    </dl>
  );
}

/** The message as its channel showed it, then where its buttons pointed. */
export function ChannelContent({ channel, content, sentAt }: { channel: Channel; content: Content; sentAt: string }) {
  // A channel this dashboard does not know yet still shows its text.
  const View: FunctionComponent<ViewProps> | undefined = VIEWS[channel];
  return (
    <>
      <p class="hint content-channel">As shown on {channelLabel(channel)}</p>
      {View ? (
        <View content={content} sentAt={sentAt} />
      ) : (
        <div class="in-app-card">
          {content.title && <p class="in-app-title">{content.title}</p>}
          <p class="in-app-body">{content.body}</p>
        </div>
      )}
      {content.buttons.length > 0 && (
        <>
          <h3>Buttons</h3>
          <ButtonTargets buttons={content.buttons} />
        </>
      )}
    </>
  );
}
