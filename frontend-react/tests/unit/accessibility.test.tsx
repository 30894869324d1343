import { render, screen } from '@testing-library/react';
import userEvent from '@testing-library/user-event';
import { describe, expect, it } from 'vitest';
import { App } from '@/app/app';

describe('keyboard and screen-reader basics', () => {
  it('tabs in reading order: skip link, navigation, camera, gallery', async () => {
    const user = userEvent.setup();
    render(<App />);
    await user.tab();
    expect(screen.getByRole('link', { name: 'Skip to main content' })).toHaveFocus();
    await user.tab();
    expect(screen.getByRole('button', { name: 'Identify' })).toHaveFocus();
    await user.tab();
    expect(screen.getByRole('button', { name: 'History' })).toHaveFocus();
    await user.tab();
    expect(screen.getByLabelText('Take a photo')).toHaveFocus();
    await user.tab();
    expect(screen.getByLabelText('Choose from gallery')).toHaveFocus();
  });

  it('labels landmarks and marks the current screen', async () => {
    const user = userEvent.setup();
    render(<App />);
    expect(screen.getByRole('banner')).toContainElement(screen.getByRole('heading', { level: 1, name: 'Mushroom ID' }));
    expect(screen.getByRole('navigation', { name: 'Main' })).toBeInTheDocument();
    expect(screen.getByRole('main')).toHaveAttribute('id', 'main');
    expect(screen.getByRole('button', { name: 'Identify' })).toHaveAttribute('aria-current', 'page');
    await user.click(screen.getByRole('button', { name: 'History' }));
    expect(screen.getByRole('button', { name: 'History' })).toHaveAttribute('aria-current', 'page');
    expect(await screen.findByRole('heading', { name: 'Past identifications' })).toBeVisible();
    expect(screen.getByText(/kept on this device only/i, { selector: 'p:not(.muted)' })).toBeInTheDocument();
  });

  it('describes both photo inputs with the photo advice and asks for images', () => {
    render(<App />);
    for (const name of ['Take a photo', 'Choose from gallery']) {
      const input = screen.getByLabelText(name);
      expect(input).toHaveAttribute('type', 'file');
      expect(input).toHaveAttribute('accept', 'image/*');
      expect(input).toHaveAccessibleDescription(/photograph the whole mushroom/i);
    }
  });
});
